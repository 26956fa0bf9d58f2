"""A loopback TCP proxy that can stall or refuse connections, to fault the MQTT link.

``freeze()`` stops forwarding on every open connection while keeping the sockets
open, as a dropped (not rejected) route does: the client still believes it is
connected. New connections made while frozen are accepted and stalled too.
``refuse()`` closes each new connection at once. ``forward()`` restores service for
new connections; frozen ones stay stalled until the client gives up on them.
"""

from __future__ import annotations

import select
import socket
import threading


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "forward"
        self.connections = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._generation = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        with self._lock:
            self.mode = "freeze"
            self._generation += 1

    def refuse(self) -> None:
        with self._lock:
            self.mode = "refuse"
            self._generation += 1

    def forward(self) -> None:
        with self._lock:
            self.mode = "forward"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode, generation = self.mode, self._generation
                self.connections += 1
                self._sockets.append(client)
            if mode == "refuse":
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, generation, mode), daemon=True).start()

    def _pipe(self, client: socket.socket, generation: int, mode: str) -> None:
        if mode == "freeze":
            self._stop.wait()  # Accepted, never served.
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with self._lock:
            self._sockets.append(upstream)
        peers = {client: upstream, upstream: client}
        while not self._stop.is_set():
            with self._lock:
                frozen = self._generation != generation and self.mode == "freeze"
            if frozen:
                self._stop.wait(0.2)
                continue
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        client.close()
                        upstream.close()
                        return
                    peers[sock].sendall(data)
            except OSError:
                return
