"""A loopback TCP proxy that stalls or refuses connections, to fault the MQTT link.

``freeze_open()`` stops forwarding on every connection open now while keeping its
sockets open, as a route that drops packets does: the client still believes it is
connected. ``mode`` decides what happens to new connections: ``forward`` serves
them, ``stall`` accepts them and never forwards a byte (a connect that times out),
``refuse`` closes them at once (a connect that is refused).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "forward"
        self.connections = 0
        self._frozen_below = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze_open(self) -> None:
        with self._lock:
            self._frozen_below = self.connections + 1

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number, mode = self.connections, self.mode
                self._sockets.append(client)
            if mode == "refuse":
                client.close()
            elif mode == "forward":
                threading.Thread(target=self._pipe, args=(client, number), daemon=True).start()

    def _pipe(self, client: socket.socket, number: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with self._lock:
            self._sockets.append(upstream)
        peers = {client: upstream, upstream: client}
        while not self._stop.is_set():
            if number < self._frozen_below:
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
