"""A TCP client that reads text frames, one per line, from a device and reconnects when it drops."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Longest line accepted; indicator and reader frames are under 64 bytes, so a longer
# line means a wrong port or a garbled stream.
MAX_LINE_BYTES = 1024
RECONNECT_MAX_S = 10.0


class LineReader:
    def __init__(self, name: str, host: str, port: int, on_line: Callable[[str], None]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.on_line = on_line
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"tcp-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay_s = 0.5
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as sock:
                    self._sock = sock
                    sock.settimeout(None)
                    logger.info("%s: connected to %s:%d", self.name, self.host, self.port)
                    delay_s = 0.5
                    self._read(sock)
            except OSError as exc:
                if not self._stop.is_set():
                    logger.warning("%s: %s:%d unreachable: %s", self.name, self.host, self.port, exc)
            finally:
                self._sock = None
            self._stop.wait(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            chunk = sock.recv(4096)
            if not chunk:
                logger.warning("%s: %s:%d closed the connection", self.name, self.host, self.port)
                return
            buffer += chunk.replace(b"\r", b"\n")
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > MAX_LINE_BYTES:
                logger.warning("%s: %d bytes without a line end; discarded", self.name, len(buffer))
                buffer = b""
            for line in lines:
                text = line.decode("ascii", errors="replace").strip()
                if text:
                    self._deliver(text)

    def _deliver(self, text: str) -> None:
        try:
            self.on_line(text)
        except Exception:
            logger.exception("%s: frame %r could not be handled", self.name, text[:80])
