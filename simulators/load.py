"""Load mode: gate events at a steady or stepped rate, with an account of every one sent.

``kouan simulate load`` runs :func:`run_load`; :class:`LoadGenerator` drives the
steps one by one. Two transports:

- ``direct``: envelopes are built and signed before each step starts and published
  straight to the broker with the device's credentials, QoS 1. This measures the
  collector side without the edge outbox's per-event fsync.
- ``edge``: events go through real :class:`EdgeAgent` outboxes, as at a lane.

Either way the collector's receipts are counted per ``seq``, so the account records
what was sent, acknowledged by the broker, and committed by the collector.

NOTE: ``make bench`` does not use this module. It publishes through bench/load.py,
which signs in worker processes before the clock starts and times every publish;
this generator runs in one process and records no per-event times.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from kouan.contract import events_topic, isoformat, receipts_topic
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.identifiers import iso6346_check_digit
from kouan.settings import CommonSettings
from kouan.signing import load_private_key, sign
from simulators import reference

# Publishes in flight per device before paho queues; QoS 1 at 10,000 events/s over
# loopback needs well above paho's default of 20.
MAX_INFLIGHT = 2_000
# Owner code of load containers; serials count up, so that every event starts a
# new visit and a container's state never grows across a benchmark.
LOAD_OWNER_CODE = "KOLU"


@dataclass(frozen=True)
class LoadPlan:
    site_id: str = "LOAD"
    devices: int = 4
    # (events per second, seconds) per step; one step is a steady rate.
    steps: list[tuple[float, float]] = field(default_factory=lambda: [(1000.0, 10.0)])
    seed: int = 1


@dataclass
class StepAccount:
    rate: float
    seconds: float
    sent: int = 0
    elapsed_s: float = 0.0

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


@dataclass
class DeviceAccount:
    device_id: str
    first_seq: int
    last_seq: int = 0
    sent: int = 0
    broker_acked: int = 0
    receipted: int = 0


@dataclass
class LoadResult:
    transport: str
    site_id: str
    started_at: str
    steps: list[StepAccount]
    devices: list[DeviceAccount]
    drained: bool = False
    drain_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(device.sent for device in self.devices)

    @property
    def receipted(self) -> int:
        return sum(device.receipted for device in self.devices)

    @property
    def unreceipted(self) -> int:
        return self.sent - self.receipted

    def summary(self) -> str:
        steps = ", ".join(f"{step.rate:.0f}/s target {step.achieved_rate:.0f}/s sent" for step in self.steps)
        return (
            f"{self.transport}: {self.sent} events sent by {len(self.devices)} devices ({steps}); "
            f"{self.receipted} receipted by the collector, {self.unreceipted} not receipted "
            f"{'after draining' if self.drained else 'when the drain timed out'} ({self.drain_s:.1f} s)."
        )

    def to_json(self) -> str:
        document = asdict(self)
        document.update(sent=self.sent, receipted=self.receipted, unreceipted=self.unreceipted)
        for step, account in zip(document["steps"], self.steps, strict=True):
            step["achieved_rate"] = account.achieved_rate
        return json.dumps(document, indent=1)


def load_container_number(index: int) -> str:
    prefix = f"{LOAD_OWNER_CODE}{index % 1_000_000:06d}"
    return prefix + iso6346_check_digit(prefix)


def _passage(rng: random.Random, lane_id: str, offset: int, index: int) -> dict[str, Any]:
    return {
        "passage_id": f"load-{lane_id}-{index}",
        "lane_id": lane_id,
        "direction": "in",
        "containers": [
            {
                "container_number": {
                    "raw": load_container_number(offset + index),
                    "source": "ocr",
                    "confidence": 0.97,
                },
                "seals": [{"raw": reference.seal_number(rng), "source": "ocr"}],
            }
        ],
        "gross_weight": {"kg": 24_000.0},
        "decision_requested": False,
    }


class _DirectDevice:
    """One load device publishing pre-signed envelopes straight to the broker."""

    def __init__(self, settings: CommonSettings, identity: DeviceIdentity, first_seq: int) -> None:
        self.identity = identity
        self.account = DeviceAccount(identity.device_id, first_seq)
        self._next_seq = first_seq
        self._key = load_private_key(identity.key_path(settings.home))
        self._receipted: set[int] = set()
        self._lock = threading.Lock()
        self.topic = events_topic(identity.site_id, identity.device_id)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"kouan-load-{identity.device_id}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_receipt
        self.client.on_publish = self._on_publish
        self._connected = threading.Event()
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError(f"Load device {identity.device_id} could not connect to the broker")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        client.subscribe(receipts_topic(self.identity.site_id, self.identity.device_id), qos=1)
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._lock:
            self.account.broker_acked += 1

    def _on_receipt(self, client, userdata, message) -> None:  # noqa: ANN001
        seqs = json.loads(message.payload).get("seqs", [])
        with self._lock:
            self._receipted.update(seq for seq in seqs if self.account.first_seq <= seq < self._next_seq)
            self.account.receipted = len(self._receipted)

    def prepare(self, payloads: list[dict[str, Any]]) -> list[bytes]:
        """Sign one envelope per payload, in seq order, before the timed part."""
        signed = []
        now = isoformat(datetime.now(UTC))
        for payload in payloads:
            document = {
                "contract_version": 1,
                "event_id": str(uuid.uuid4()),
                "device_id": self.identity.device_id,
                "site_id": self.identity.site_id,
                "seq": self._next_seq,
                "kind": "gate.passage",
                "occurred_at": now,
                "recorded_at": now,
                "sent_at": now,
                "payload": payload,
            }
            document["signature"] = sign(document, self._key)
            signed.append(json.dumps(document, ensure_ascii=False).encode())
            self._next_seq += 1
        return signed

    def publish(self, envelope: bytes) -> None:
        self.client.publish(self.topic, envelope, qos=1)
        self.account.sent += 1
        self.account.last_seq = self.account.first_seq + self.account.sent - 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LoadGenerator:
    """Provision load devices, publish the plan's steps, and account for every event."""

    def __init__(self, settings: CommonSettings, plan: LoadPlan, transport: str = "direct") -> None:
        if transport not in ("direct", "edge"):
            raise ValueError(f"Load transport {transport!r} is not one of direct, edge")
        self.settings = settings
        self.plan = plan
        self.transport = transport
        self.rng = random.Random(plan.seed)
        # Serials continue where the previous run's left off, at a random place.
        self.serial_offset = random.Random().randrange(1_000_000)
        self.identities: list[DeviceIdentity] = []
        self.direct: list[_DirectDevice] = []
        self.agents: list[Any] = []
        self.result = LoadResult(transport, plan.site_id, datetime.now(UTC).isoformat(), [], [])

    def provision(self) -> None:
        from kouan.stack.manager import Stack, reload_broker, write_broker_auth

        letter = "D" if self.transport == "direct" else "E"
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            ensure_site(conn, self.plan.site_id, f"负载测试 {self.plan.site_id}")
            for index in range(self.plan.devices):
                ensure_lane(conn, self.plan.site_id, f"L{letter}{index:02d}", "in")
        for index in range(self.plan.devices):
            lane = f"L{letter}{index:02d}"
            self.identities.append(
                provision(
                    self.settings.home,
                    self.settings.database_url,
                    f"{self.plan.site_id}-{lane}",
                    self.plan.site_id,
                    lane,
                    "lane",
                )
            )
        stack = Stack(self.settings.home, self.settings.mqtt_port, self.settings.stack_pg_port)
        if stack.service_secret.exists():
            write_broker_auth(stack)
            reload_broker(stack)
            time.sleep(0.3)  # Mosquitto rereads its password file on SIGHUP asynchronously.
        self._connect()

    def _connect(self) -> None:
        if self.transport == "direct":
            with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
                for identity in self.identities:
                    row = conn.execute(
                        "SELECT coalesce(max(seq), 0) FROM event_keys WHERE device_id = %s",
                        (identity.device_id,),
                    ).fetchone()
                    self.direct.append(_DirectDevice(self.settings, identity, int(row[0]) + 1 if row else 1))
            self.result.devices = [device.account for device in self.direct]
            return

        from edge.agent import EdgeAgent
        from edge.settings import EdgeSettings

        for identity in self.identities:
            agent = EdgeAgent(
                identity, EdgeSettings(**self.settings.model_dump(), device_id=identity.device_id)
            )
            agent.start()
            self.agents.append(agent)
            self.result.devices.append(DeviceAccount(identity.device_id, agent.outbox.last_seq() + 1))

    def run_step(self, rate: float, seconds: float) -> StepAccount:
        """Publish at ``rate`` events/s across all devices for ``seconds``."""
        step = StepAccount(rate, seconds)
        total = int(rate * seconds)
        count = len(self.identities)
        batches = self._prepare(total) if self.transport == "direct" else None

        started = time.monotonic()
        for index in range(total):
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0.001:
                time.sleep(delay)
            self._send(index % count, index, batches)
            step.sent += 1
        step.elapsed_s = time.monotonic() - started
        self.result.steps.append(step)
        return step

    def _prepare(self, total: int) -> list[list[bytes]]:
        count = len(self.direct)
        batches = []
        for position, device in enumerate(self.direct):
            indices = range(position, total, count)
            lane = device.identity.lane_id or "L00"
            batches.append(
                device.prepare([_passage(self.rng, lane, self.serial_offset, index) for index in indices])
            )
        return batches

    def _send(self, device_index: int, index: int, batches: list[list[bytes]] | None) -> None:
        if batches is not None:
            self.direct[device_index].publish(batches[device_index][index // len(self.direct)])
            return

        agent = self.agents[device_index]
        lane = agent.identity.lane_id or "L00"
        seq = agent.emit(
            "gate.passage", _passage(self.rng, lane, self.serial_offset, index), datetime.now(UTC)
        )
        account = self.result.devices[device_index]
        account.sent += 1
        account.last_seq = seq

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until the collector has receipted every event sent; return whether it did."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            self._collect_receipts()
            if self.result.unreceipted == 0:
                break
            time.sleep(0.1)
        self._collect_receipts()
        self.result.drain_s = time.monotonic() - started
        self.result.drained = self.result.unreceipted == 0
        return self.result.drained

    def _collect_receipts(self) -> None:
        for agent, account in zip(self.agents, self.result.devices, strict=False):
            account.receipted = agent.receipted

    def close(self) -> None:
        for device in self.direct:
            device.close()
        for agent in self.agents:
            agent.stop()


def run_load(
    settings: CommonSettings, plan: LoadPlan, transport: str = "direct", drain_timeout_s: float = 60.0
) -> LoadResult:
    """Provision, run every step of the plan, drain, and return the account."""
    generator = LoadGenerator(settings, plan, transport)
    generator.provision()
    try:
        for rate, seconds in plan.steps:
            generator.run_step(rate, seconds)
        generator.drain(drain_timeout_s)
    finally:
        generator.close()
    return generator.result
