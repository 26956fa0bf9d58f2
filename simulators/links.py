"""The network between a simulated device and the broker, with the faults a real one has.

``LinkProxy`` is a TCP relay between one edge agent and Mosquitto: cutting it closes
the agent's socket and refuses reconnects until it is restored, so the agent's own
reconnect and outbox replay are what recover. ``SimulatedDeviceAgent`` routes the agent's
MQTT clients and changes single messages on their way out: a redelivery, a delay
that makes the message arrive after later ones, or a device clock that runs fast
or slow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import EdgeAgent
from kouan.contract import isoformat
from kouan.signing import sign

logger = logging.getLogger(__name__)

RELAY_CHUNK_BYTES = 65_536


class LinkProxy:
    """A TCP relay from 127.0.0.1:``port`` to the broker that can be cut and restored."""

    def __init__(self, upstream_host: str, upstream_port: int, name: str) -> None:
        self.name = name
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept_loop, name=f"link-{name}", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        self._up.clear()
        self.cuts += 1
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)
        logger.info("Link %s cut: %d sockets closed", self.name, len(sockets))

    def restore(self) -> None:
        self._up.set()
        logger.info("Link %s restored", self.name)

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                _close(downstream)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError as exc:
                logger.warning("Link %s: broker unreachable: %s", self.name, exc)
                _close(downstream)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((downstream, upstream))
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._relay, args=(source, target), daemon=True).start()

    def _relay(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(RELAY_CHUNK_BYTES)
                if not chunk:
                    break
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class DeviceFaults:
    """The per-``seq`` faults of one device's events on their way to the broker.

    Faults are registered for a ``seq`` before the event is emitted. A resend of the
    same ``seq`` (after a reconnect) passes through the same clock skew, so the bytes
    on the wire stay identical, as the contract requires; a redelivery or delay is
    applied to the first transmission only.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._lock = threading.Lock()
        self.copies: dict[int, int] = {}
        self.delays_s: dict[int, float] = {}
        self.skews: dict[int, timedelta] = {}
        self._applied: set[int] = set()
        self.extra_publishes = 0
        # Offset of the device's clock while a clock fault lasts; status messages carry it.
        self.clock_skew: timedelta | None = None

    def publish(self, client: mqtt.Client, topic: str, payload: Any, qos: int, **kwargs: Any) -> Any:
        """Publish one message on ``client`` with the faults registered for its ``seq``."""
        send = mqtt.Client.publish
        if topic.endswith("/status") and self.clock_skew is not None:
            return send(client, topic, self._skewed_status(payload, self.clock_skew), qos=qos, **kwargs)
        if not topic.endswith("/events") or not (self.copies or self.delays_s or self.skews):
            return send(client, topic, payload, qos=qos, **kwargs)

        document = json.loads(payload)
        seq = document.get("seq")
        with self._lock:
            skew = self.skews.get(seq)
            first_time = seq not in self._applied
            self._applied.add(seq)
            copies = self.copies.get(seq, 1) if first_time else 1
            delay_s = self.delays_s.get(seq) if first_time else None

        if skew is not None:
            payload = self._skewed(document, skew)
        if delay_s is not None:
            timer = threading.Timer(delay_s, send, (client, topic, payload), {"qos": qos})
            timer.daemon = True
            timer.start()
            return mqtt.MQTTMessageInfo(0)

        info = None
        for _ in range(copies):
            info = send(client, topic, payload, qos=qos, **kwargs)
        self.extra_publishes += copies - 1
        return info

    @staticmethod
    def _skewed_status(payload: Any, skew: timedelta) -> bytes:
        status = json.loads(payload)
        if isinstance(status.get("clock"), str):
            status["clock"] = isoformat(datetime.fromisoformat(status["clock"]) + skew)
        return json.dumps(status).encode()

    def _skewed(self, document: dict[str, Any], skew: timedelta) -> bytes:
        # The device signs with its own clock, so the skewed sent_at is signed too.
        document = {key: value for key, value in document.items() if key != "signature"}
        document["sent_at"] = isoformat(datetime.fromisoformat(document["sent_at"]) + skew)
        document["signature"] = sign(document, self._key)
        return json.dumps(document, ensure_ascii=False).encode()


class FaultyClient(mqtt.Client):
    """A paho client whose publishes pass through a device's :class:`DeviceFaults`."""

    device_faults: DeviceFaults

    def publish(
        self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False, properties: Any = None
    ) -> Any:
        return self.device_faults.publish(self, topic, payload, qos, retain=retain, properties=properties)


class SimulatedDeviceAgent(EdgeAgent):
    """The real edge agent, with every MQTT client it opens routed through the fault layer."""

    def __init__(self, *args: Any, device_faults: DeviceFaults, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device_faults = device_faults

    def _make_client(self) -> mqtt.Client:
        client = super()._make_client()
        # The agent configures each client itself (credentials, will); only publish changes.
        client.__class__ = FaultyClient
        client.device_faults = self.device_faults  # type: ignore[attr-defined]
        return client
