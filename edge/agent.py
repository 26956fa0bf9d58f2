"""The edge agent: device adapters emit events, the outbox keeps them, MQTT carries them.

Delivery is the agent's own job, not the MQTT client's:

- Each connection uses a new paho client, so nothing a previous connection queued
  or counted in flight inside paho survives it. paho-mqtt 2.x resends its whole
  queue after a reconnect, ignoring ``max_inflight``; with a new client that queue
  is gone and only the agent resends. An in-flight counter left full by a lost
  connection cannot stall the next one either.
- After every connect the agent publishes everything still in the outbox in ``seq``
  order, at most ``inflight_window`` events awaiting a receipt at a time, and never
  more unacknowledged PUBLISH packets than the broker's Receive Maximum.
- An event is deleted only when the collector's receipt names its ``seq``. A PUBACK
  from the broker means nothing here.
- A connection that reports connected but brings no receipt for events in flight
  within ``stall_timeout_s`` is dropped (the will goes out) and opened again.

The session is persistent (clean start off, session expiry ``session_expiry_s``), so
commands and receipts published while the lane was offline are delivered after it
reconnects. When the broker lost the session (``session_present`` is 0) nothing is
lost: subscriptions are made on every connect and the outbox is resent in full.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import Outbox, OutboxFull, PendingEvent
from edge.settings import EdgeSettings
from kouan.contract import (
    PAYLOAD_MODELS,
    commands_topic,
    events_topic,
    isoformat,
    new_envelope,
    receipts_topic,
    status_topic,
)
from kouan.devices import DeviceIdentity
from kouan.signing import load_private_key, sign

logger = logging.getLogger(__name__)

SEND_BATCH = 200
# MQTT 5 (3.2.2.3.3): a CONNACK without Receive Maximum means 65,535.
DEFAULT_RECEIVE_MAXIMUM = 65_535
CONNACK_TIMEOUT_S = 10.0


@dataclass
class AgentStats:
    """Counters of one agent process, also carried in its status message."""

    connects: int = 0
    stalls: int = 0
    sessions_lost: int = 0
    receipted: int = 0
    published: int = 0
    rejected_full: int = 0


class _Link:
    """One MQTT connection: its paho client and what happened on it."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.refused: str | None = None
        self.session_present = False
        self.receive_maximum = DEFAULT_RECEIVE_MAXIMUM


class EdgeAgent:
    def __init__(
        self,
        identity: DeviceIdentity,
        settings: EdgeSettings,
        outbox_path: Path | None = None,
        on_command: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self.on_command = on_command
        self._key = load_private_key(identity.key_path(settings.home))
        path = outbox_path or DeviceIdentity.directory(settings.home, identity.device_id) / "outbox.sqlite3"
        self.outbox = Outbox(path, settings.outbox_capacity)
        self.stats = AgentStats()

        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._last_sent_seq = 0
        self._inflight: set[int] = set()
        self._last_progress = time.monotonic()
        self._status_due = threading.Event()
        self._receive_maximum = DEFAULT_RECEIVE_MAXIMUM
        self._stall_timeout_s = settings.stall_timeout_s
        self._thread = threading.Thread(target=self._run, name=f"edge-{identity.device_id}", daemon=True)

    @property
    def receipted(self) -> int:
        return self.stats.receipted

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.connected.is_set() and not link.closed.is_set()

    # --- adapter side ---------------------------------------------------------------

    def emit(
        self,
        kind: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        recorded_at: datetime | None = None,
    ) -> int:
        """Validate and commit one event to the outbox; return its seq.

        Raises ``OutboxFull`` when the outbox is at capacity (the rejection is counted
        and reported in the next status message) and ``pydantic.ValidationError``
        when the payload does not follow the contract.
        """
        PAYLOAD_MODELS[kind].model_validate(payload)
        recorded = recorded_at or datetime.now(UTC)

        def build(seq: int) -> dict[str, Any]:
            return new_envelope(
                self.identity.device_id, self.identity.site_id, seq, kind, payload, occurred_at, recorded
            )

        try:
            seq = self.outbox.append(build)
        except OutboxFull:
            self._note_rejection()
            raise
        self._wake.set()
        return seq

    def _note_rejection(self) -> None:
        with self._lock:
            self.stats.rejected_full += 1
            first = self.stats.rejected_full == 1
        if first or self.stats.rejected_full % 1000 == 0:
            logger.error(
                "Device %s: outbox full at %d events; %d events rejected so far. "
                "Check the link to the broker and the collector.",
                self.identity.device_id,
                self.outbox.capacity,
                self.stats.rejected_full,
            )
        self._status_due.set()
        self._wake.set()

    # --- connection lifecycle -------------------------------------------------------

    def _run(self) -> None:
        """Connect, serve the connection until it ends, and connect again with backoff."""
        delay_s = self.settings.reconnect_min_s
        while not self._stop.is_set():
            link = self._connect()
            if link is None:
                self._stop.wait(delay_s * random.uniform(0.8, 1.2))
                delay_s = min(delay_s * 2, self.settings.reconnect_max_s)
                continue

            delay_s = self.settings.reconnect_min_s
            reason = self._serve(link)
            self._close(link, reason)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kouan-edge-{self.identity.device_id}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        client.username_pw_set(self.identity.mqtt_username, self.identity.mqtt_password)
        client.will_set(
            status_topic(self.identity.site_id, self.identity.device_id),
            json.dumps(self._status("offline")),
            qos=1,
            retain=True,
        )
        return client

    def _connect(self) -> _Link | None:
        link = _Link(self._make_client())
        link.client.max_inflight_messages_set(
            max(1, min(self.settings.inflight_window, self._receive_maximum))
        )
        link.client.on_connect = lambda *args: self._on_connect(link, *args)
        link.client.on_disconnect = lambda *args: self._on_disconnect(link, *args)
        link.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        try:
            link.client.connect(
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                keepalive=self.settings.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        except OSError as exc:
            logger.warning(
                "Device %s: cannot reach broker %s:%d: %s",
                self.identity.device_id,
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                exc,
            )
            return None

        link.client.loop_start()
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while not link.connected.is_set() and not link.closed.is_set() and time.monotonic() < deadline:
            link.connected.wait(0.05)
        if link.connected.is_set() and not link.closed.is_set():
            return link

        why = link.refused or ("connection closed" if link.closed.is_set() else "no CONNACK in time")
        logger.warning("Device %s: connection to the broker failed: %s", self.identity.device_id, why)
        self._close(link, why)
        return None

    def _on_connect(self, link: _Link, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            link.refused = f"broker rejected the connection: {reason_code}"
            link.closed.set()
            return

        link.session_present = bool(flags.session_present)
        link.receive_maximum = int(getattr(properties, "ReceiveMaximum", DEFAULT_RECEIVE_MAXIMUM))
        # paho ignores the broker's Receive Maximum; more unacknowledged QoS 1
        # PUBLISH packets than that is a protocol error the broker disconnects for.
        # The broker's value is known only now, and paho 2.2 rejects the public
        # setter once connected, so the private attribute is set. The next
        # connection starts from the value learnt here.
        self._receive_maximum = link.receive_maximum
        client._max_inflight_messages = max(1, min(self.settings.inflight_window, link.receive_maximum))
        site, device = self.identity.site_id, self.identity.device_id
        client.subscribe([(receipts_topic(site, device), 1), (commands_topic(site, device), 1)])
        link.connected.set()

    def _on_disconnect(self, link: _Link, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not link.closed.is_set() and not self._stop.is_set() and link.connected.is_set():
            logger.warning(
                "Device %s: disconnected by the broker or network (%s)", self.identity.device_id, reason_code
            )
        link.closed.set()
        self._wake.set()

    def _close(self, link: _Link, reason: str) -> None:
        """End a connection; after a stall the broker publishes the will (offline)."""
        link.closed.set()
        if self._link is link:
            self._link = None
        if reason == "stopping":
            link.client.disconnect()
        elif link.client.is_connected():
            # MQTT 5 reason code 0x04: the broker publishes the will, so the status
            # topic shows the lane offline while the agent reconnects.
            link.client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        link.client.loop_stop()
        sock = link.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self, link: _Link) -> str:
        """Send and watch one connection until it ends; return why it ended."""
        self.stats.connects += 1
        if not link.session_present and self.stats.connects > 1:
            self.stats.sessions_lost += 1
            logger.warning(
                "Device %s: the broker kept no session (session_present 0); commands "
                "published while offline are lost, every event not yet receipted is resent",
                self.identity.device_id,
            )
        with self._lock:
            # Everything not yet receipted goes out again, in seq order.
            self._last_sent_seq = 0
            self._inflight.clear()
            self._last_progress = time.monotonic()
        self._link = link
        logger.info(
            "Device %s connected (session present: %s, receive maximum %d); outbox depth %d",
            self.identity.device_id,
            link.session_present,
            link.receive_maximum,
            self.outbox.depth(),
        )
        self._publish_status(link, "online")
        last_status = time.monotonic()

        while True:
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            if self._stop.is_set():
                return "stopping"
            if link.closed.is_set():
                return "disconnected"

            self._send_pending(link)
            if self._check_stall():
                return "stalled"
            if self._status_due.is_set() or time.monotonic() - last_status >= self.settings.status_interval_s:
                self._status_due.clear()
                self._publish_status(link, "online")
                last_status = time.monotonic()

    # --- receiving ------------------------------------------------------------------

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:  # noqa: ANN001
        # Messages the broker delivers right after CONNACK, before the SUBACK, arrive
        # here too, because routing is by topic and not by subscription state.
        try:
            body = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("Device %s: message on %s is not JSON", self.identity.device_id, message.topic)
            return

        if message.topic.endswith("/receipts"):
            self._on_receipt(body)
        elif message.topic.endswith("/commands") and self.on_command is not None:
            try:
                self.on_command(body)
            except Exception:
                logger.exception(
                    "Device %s: command handler failed on %s", self.identity.device_id, message.topic
                )

    def _on_receipt(self, body: dict[str, Any]) -> None:
        seqs = [seq for seq in body.get("seqs", []) if isinstance(seq, int)]
        deleted = self.outbox.delete(seqs)
        with self._lock:
            self._inflight.difference_update(seqs)
            self._last_progress = time.monotonic()
            self._stall_timeout_s = self.settings.stall_timeout_s
            self.stats.receipted += deleted
        self._wake.set()

    # --- sending --------------------------------------------------------------------

    def _send_pending(self, link: _Link) -> None:
        while not link.closed.is_set() and not self._stop.is_set():
            with self._lock:
                room = self.settings.inflight_window - len(self._inflight)
                after = self._last_sent_seq
            if room <= 0:
                return
            batch = self.outbox.pending(after, min(room, SEND_BATCH))
            if not batch:
                return
            self._publish(link, batch)

    def _publish(self, link: _Link, batch: list[PendingEvent]) -> None:
        now = datetime.now(UTC)
        first_sends = []
        payloads = []
        for event in batch:
            if event.signed is None:
                document = {**event.document, "sent_at": isoformat(now)}
                document["signature"] = sign(document, self._key)
                signed = json.dumps(document, ensure_ascii=False).encode()
                first_sends.append((event.seq, signed))
                payloads.append((event.seq, signed))
            else:
                payloads.append((event.seq, event.signed))
        if first_sends:
            self.outbox.mark_signed(first_sends, now.timestamp())

        topic = events_topic(self.identity.site_id, self.identity.device_id)
        for seq, payload in payloads:
            info = link.client.publish(topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                return  # The connection ended; the next one resends from the outbox.
            with self._lock:
                if not self._inflight:
                    # The stall clock starts with the first event in flight, not at the
                    # last receipt, which may be hours old on a quiet lane.
                    self._last_progress = time.monotonic()
                self._inflight.add(seq)
                self._last_sent_seq = max(self._last_sent_seq, seq)
                self.stats.published += 1

    def _check_stall(self) -> bool:
        """Return whether events are in flight and no receipt came within the stall timeout.

        NOTE: an event the collector quarantines is never receipted, so it stays in
        the outbox and in flight, and is resent after each reconnect. The agent
        validates payloads before accepting them, so only a collector-side failure
        (``store_failed``) leads here.
        """
        with self._lock:
            silent_s = time.monotonic() - self._last_progress
            waiting = len(self._inflight)
            timeout_s = self._stall_timeout_s
        if not waiting or silent_s <= timeout_s:
            return False

        # A collector that is down brings no receipts on any connection. Each stall
        # doubles the wait before the next, so the broker does not queue a fresh copy
        # of the window for the collector's session every stall_timeout_s.
        with self._lock:
            self._stall_timeout_s = min(timeout_s * 2, self.settings.stall_timeout_max_s)
        self.stats.stalls += 1
        logger.warning(
            "Device %s: connected, but no receipt for %.0f s with %d events in flight "
            "(first unreceipted seq %s); reconnecting",
            self.identity.device_id,
            silent_s,
            waiting,
            min(self._inflight, default=None),
        )
        return True

    # --- status ---------------------------------------------------------------------

    def _status(self, state: str) -> dict[str, Any]:
        depth = self.outbox.depth()
        return {
            "state": state,
            "device_id": self.identity.device_id,
            "outbox_depth": depth,
            "outbox_capacity": self.outbox.capacity,
            "outbox_full": depth >= self.outbox.capacity,
            "outbox_rejected": self.outbox.rejected_total(),
            "oldest_pending_s": self.outbox.oldest_pending_age_s(),
            "last_seq": self.outbox.last_seq(),
            "clock": isoformat(datetime.now(UTC)),
            "firmware": self.settings.firmware,
            "connects": self.stats.connects,
            "stalls": self.stats.stalls,
            "sessions_lost": self.stats.sessions_lost,
        }

    def _publish_status(self, link: _Link, state: str) -> None:
        link.client.publish(
            status_topic(self.identity.site_id, self.identity.device_id),
            json.dumps(self._status(state)),
            qos=1,
            retain=True,
        )

    def status(self) -> dict[str, Any]:
        """Return what the next status message would carry."""
        return self._status("online" if self.connected else "offline")

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wait_until_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected:
                return True
            time.sleep(0.05)
        return self.connected

    def wait_until_drained(self, timeout: float) -> bool:
        """Wait until every accepted event has been receipted; return whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0:
                return True
            time.sleep(0.05)
        return self.outbox.depth() == 0

    def stop(self) -> None:
        link = self._link
        if link is not None and self.connected:
            info = link.client.publish(
                status_topic(self.identity.site_id, self.identity.device_id),
                json.dumps(self._status("offline")),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.outbox.close()
