"""The edge agent: device adapters emit events, the outbox keeps them, MQTT carries them.

Delivery is the agent's own job, not the MQTT client's: after every (re)connect the
agent publishes everything still in the outbox in ``seq`` order, and it deletes an
event only when the collector's receipt names its ``seq``. A PUBACK from the broker
means nothing here. This sidesteps the client failure modes where a session, an
in-flight window or a queue inside the MQTT client is lost or stalls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.outbox import Outbox, PendingEvent
from edge.settings import EdgeSettings
from kouan.contract import (
    CONTRACT_VERSION,
    PAYLOAD_MODELS,
    commands_topic,
    events_topic,
    isoformat,
    receipts_topic,
    status_topic,
)
from kouan.devices import DeviceIdentity
from kouan.signing import load_private_key, sign

logger = logging.getLogger(__name__)

SEND_BATCH = 200


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
        self.client = self._make_client()

        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._last_sent_seq = 0
        self._inflight: set[int] = set()
        self._last_progress = time.monotonic()
        self.receipted = 0
        self.reconnects = 0
        self._sender = threading.Thread(
            target=self._send_loop, name=f"edge-{identity.device_id}", daemon=True
        )

    # --- adapter side ---------------------------------------------------------------

    def emit(
        self,
        kind: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        recorded_at: datetime | None = None,
    ) -> int:
        """Validate and commit one event to the outbox; return its seq.

        Raises ``OutboxFull`` when the outbox is at capacity and ``pydantic.ValidationError``
        when the payload does not follow the contract.
        """
        PAYLOAD_MODELS[kind].model_validate(payload)
        recorded = recorded_at or datetime.now(UTC)

        def build(seq: int) -> dict[str, Any]:
            return {
                "contract_version": CONTRACT_VERSION,
                "event_id": str(uuid.uuid4()),
                "device_id": self.identity.device_id,
                "site_id": self.identity.site_id,
                "seq": seq,
                "kind": kind,
                "occurred_at": isoformat(occurred_at),
                "recorded_at": isoformat(recorded),
                "payload": payload,
            }

        seq = self.outbox.append(build)
        self._wake.set()
        return seq

    # --- MQTT -----------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kouan-edge-{self.identity.device_id}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(self.identity.mqtt_username, self.identity.mqtt_password)
        client.will_set(
            status_topic(self.identity.site_id, self.identity.device_id),
            json.dumps({"state": "offline", "device_id": self.identity.device_id}),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            logger.error("Device %s: broker refused the connection: %s", self.identity.device_id, reason_code)
            return

        site, device = self.identity.site_id, self.identity.device_id
        client.subscribe([(receipts_topic(site, device), 1), (commands_topic(site, device), 1)])
        with self._lock:
            # Everything not yet receipted goes out again, in seq order.
            self._last_sent_seq = 0
            self._inflight.clear()
            self._last_progress = time.monotonic()
        self._connected.set()
        self._publish_status("online")
        self._wake.set()
        logger.info("Device %s connected; outbox depth %d", device, self.outbox.depth())

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._connected.clear()
        if not self._stop.is_set():
            logger.warning(
                "Device %s disconnected (%s); will reconnect", self.identity.device_id, reason_code
            )

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:  # noqa: ANN001
        try:
            body = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("Device %s: message on %s is not JSON", self.identity.device_id, message.topic)
            return

        if message.topic.endswith("/receipts"):
            self._on_receipt(body)
        elif message.topic.endswith("/commands") and self.on_command is not None:
            self.on_command(body)

    def _on_receipt(self, body: dict[str, Any]) -> None:
        seqs = [seq for seq in body.get("seqs", []) if isinstance(seq, int)]
        deleted = self.outbox.delete(seqs)
        with self._lock:
            self._inflight.difference_update(seqs)
            self._last_progress = time.monotonic()
            self.receipted += deleted
        self._wake.set()

    # --- sending --------------------------------------------------------------------

    def _send_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if not self._connected.is_set():
                continue

            self._send_pending()
            self._check_stall()
            if time.monotonic() - last_status >= self.settings.status_interval_s:
                self._publish_status("online")
                last_status = time.monotonic()

    def _send_pending(self) -> None:
        while self._connected.is_set() and not self._stop.is_set():
            with self._lock:
                room = self.settings.inflight_window - len(self._inflight)
                after = self._last_sent_seq
            if room <= 0:
                return
            batch = self.outbox.pending(after, min(room, SEND_BATCH))
            if not batch:
                return
            self._publish(batch)

    def _publish(self, batch: list[PendingEvent]) -> None:
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
            self.client.publish(topic, payload, qos=1)
            with self._lock:
                self._inflight.add(seq)
                self._last_sent_seq = max(self._last_sent_seq, seq)

    def _check_stall(self) -> None:
        """Reconnect when the link looks up but no receipt has come for pending events."""
        with self._lock:
            stalled = bool(self._inflight) and (
                time.monotonic() - self._last_progress > self.settings.stall_timeout_s
            )
            waiting = len(self._inflight)
        if not stalled:
            return

        logger.warning(
            "Device %s: no receipt for %.0f s with %d events in flight; reconnecting",
            self.identity.device_id,
            self.settings.stall_timeout_s,
            waiting,
        )
        self.reconnects += 1
        self._connected.clear()
        self.client.reconnect()

    def _publish_status(self, state: str) -> None:
        status = {
            "state": state,
            "device_id": self.identity.device_id,
            "outbox_depth": self.outbox.depth(),
            "oldest_pending_s": self.outbox.oldest_pending_age_s(),
            "clock": isoformat(datetime.now(UTC)),
            "firmware": self.settings.firmware,
        }
        self.client.publish(
            status_topic(self.identity.site_id, self.identity.device_id),
            json.dumps(status),
            qos=1,
            retain=True,
        )

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=15)
        self.client.loop_start()
        self._sender.start()

    def wait_until_drained(self, timeout: float) -> bool:
        """Wait until every accepted event has been receipted; return whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0:
                return True
            time.sleep(0.05)
        return self.outbox.depth() == 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=5)
        if self._connected.is_set():
            self._publish_status("offline")
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()
