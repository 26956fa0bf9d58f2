"""Load mode: signed gate events at fixed rates or at full speed, each one accounted for.

``kouan simulate load`` and the benchmark (``make bench``) both drive load through
this module.

:func:`publish_burst` is the engine of the ``direct`` transport. One Python process
cannot sign and publish thousands of events per second beside a broker, a database
and a collector on the same cores, so a burst runs in two parts:

1. each worker process builds and signs its devices' envelopes (canonical JSON and
   Ed25519, as an edge agent does) before the clock starts;
2. the workers then publish them over one MQTT connection per device, as that
   device's broker user, with QoS 1, at a fixed total rate or as fast as they can,
   and record the wall-clock time of every publish call.

:class:`LoadGenerator` provisions the devices, runs each step as a burst and listens
to the collector's receipts, so the account records for every event when it was
published, whether the broker acknowledged it, and when the collector committed it.
The ``edge`` transport sends the events through real :class:`EdgeAgent` outboxes
instead (one fsync per event) and counts their receipts.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import statistics
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from kouan.contract import events_topic, new_envelope, receipts_topic
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.identifiers import iso6346_check_digit
from kouan.settings import CommonSettings
from kouan.signing import load_private_key, sign

# Owner codes of real carriers. Any valid ISO 6346 number would pass the collector.
OWNER_CODES = ("MSCU", "MAEU", "CMAU", "COSU", "OOLU", "EGLU", "HLXU", "ONEU")
# Unacknowledged QoS 1 PUBLISH packets paho allows per device connection (its default
# is 20). paho queues the rest locally, so a low value throttles the rate.
MAX_INFLIGHT_PER_DEVICE = 1000
PUBACK_TIMEOUT_S = 60.0
DEFAULT_WORKERS = 2
WORKER_NAME = "kouan-load"


def container_number(device_index: int, seq: int, serial_offset: int = 0) -> str:
    """Return a valid ISO 6346 number; seqs 2k and 2k+1 of a device share one container.

    Two events per container (a gate-in passage and a re-read) give the correlation
    step both new visits and updates of existing ones.
    """
    serial = (serial_offset + device_index * 1_000_003 + seq // 2) % 1_000_000
    first10 = f"{OWNER_CODES[device_index % len(OWNER_CODES)]}{serial:06d}"
    return first10 + iso6346_check_digit(first10)


def gate_passage(
    lane_id: str, device_index: int, seq: int, serial_offset: int = 0, direction: str = "in"
) -> dict[str, Any]:
    """Return the payload of a gate passage with one container, one seal and a weight."""
    return {
        "passage_id": f"load-{lane_id}-{seq}",
        "lane_id": lane_id,
        "direction": direction,
        "tractor_plate": {"raw": "沪A12345", "source": "lpr", "confidence": 0.97},
        "containers": [
            {
                "container_number": {
                    "raw": container_number(device_index, seq, serial_offset),
                    "source": "ocr",
                    "confidence": 0.93,
                },
                "seals": [{"raw": f"CN{seq % 10_000_000:07d}", "source": "ocr", "confidence": 0.9}],
            }
        ],
        "gross_weight": {"kg": 28_400.0 + seq % 500},
        "decision_requested": False,
    }


def _envelope(identity: DeviceIdentity, device_index: int, seq: int, sent_at: datetime, offset: int) -> dict:
    occurred = sent_at - timedelta(milliseconds=300)
    payload = gate_passage(identity.lane_id or "L00", device_index, seq, offset)
    return new_envelope(
        identity.device_id, identity.site_id, seq, "gate.passage", payload, occurred, occurred, sent_at
    )


# --- the direct transport's engine ---------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """``count`` events per device, device i from seq ``first_seqs[i]`` on."""

    home: Path
    mqtt_host: str
    mqtt_port: int
    devices: tuple[DeviceIdentity, ...]
    first_seqs: tuple[int, ...]
    count: int
    rate: float | None  # events/s over all devices; None publishes as fast as possible
    workers: int = DEFAULT_WORKERS
    serial_offset: int = 0

    @property
    def total(self) -> int:
        return len(self.devices) * self.count

    def seq_ranges(self) -> tuple[list[str], list[int], list[int]]:
        """Return device ids, first seqs and last seqs, for SQL ``unnest``."""
        return (
            [device.device_id for device in self.devices],
            list(self.first_seqs),
            [first + self.count - 1 for first in self.first_seqs],
        )


@dataclass
class PublishLog:
    """Publish record of a burst: one entry per event, in publish order within each worker."""

    device_index: array  # position in Burst.devices
    seq: array
    published_at: array  # Unix seconds of the publish call
    started_at: float
    finished_at: float  # last PUBACK
    unacknowledged: list[int]  # per device: publishes without PUBACK within PUBACK_TIMEOUT_S

    @property
    def offered_rate(self) -> float:
        if not self.published_at:
            return float("nan")
        span = max(self.published_at) - min(self.published_at)
        return len(self.seq) / span if span > 0 else float("nan")


def publish_burst(burst: Burst) -> PublishLog:
    """Sign the burst's envelopes in worker processes, then publish them all at once."""
    context = mp.get_context("fork")
    workers = max(1, min(burst.workers, len(burst.devices)))
    ready = context.Barrier(workers + 1)
    start_at = context.Value("d", 0.0)
    results = context.Queue()
    shares = [list(range(index, len(burst.devices), workers)) for index in range(workers)]
    processes = [
        context.Process(
            target=_worker, args=(burst, share, ready, start_at, results), name=f"{WORKER_NAME}-{n}"
        )
        for n, share in enumerate(shares)
    ]
    for process in processes:
        process.start()

    ready.wait()  # every worker has signed its envelopes and connected
    start_at.value = time.time() + 0.2
    ready.wait()
    parts = [results.get() for _ in processes]
    for process in processes:
        process.join()

    unacknowledged = [0] * len(burst.devices)
    for part in parts:
        for index, missing in part["unacknowledged"].items():
            unacknowledged[index] = missing
    return PublishLog(
        device_index=_joined([part["device_index"] for part in parts], "i"),
        seq=_joined([part["seq"] for part in parts], "q"),
        published_at=_joined([part["published_at"] for part in parts], "d"),
        started_at=min(part["started_at"] for part in parts),
        finished_at=max(part["finished_at"] for part in parts),
        unacknowledged=unacknowledged,
    )


def worker_pids() -> list[int]:
    """Return the pids of running publishing workers, for CPU and memory accounting."""
    return [child.pid for child in mp.active_children() if child.name.startswith(WORKER_NAME) and child.pid]


def _joined(parts: list[array], typecode: str) -> array:
    joined = array(typecode)
    for part in parts:
        joined.extend(part)
    return joined


def _worker(burst: Burst, share: list[int], ready: Any, start_at: Any, results: Any) -> None:
    messages = _sign_share(burst, share)
    clients = {index: _connect(burst, burst.devices[index]) for index in share}

    ready.wait()
    ready.wait()
    published_at, infos = _publish(burst, messages, clients, start_at.value, len(share) / len(burst.devices))
    indices = array("i", (index for index, _, _, _ in messages))
    unacknowledged = _unacknowledged(infos, indices, share)
    finished_at = time.time()
    for client in clients.values():
        client.disconnect()
        client.loop_stop()

    results.put(
        {
            "device_index": indices,
            "seq": array("q", (seq for _, seq, _, _ in messages)),
            "published_at": published_at,
            "started_at": min(published_at) if published_at else finished_at,
            "finished_at": finished_at,
            "unacknowledged": unacknowledged,
        }
    )


def _sign_share(burst: Burst, share: list[int]) -> list[tuple[int, int, str, bytes]]:
    """Return (device index, seq, topic, signed bytes), interleaved across devices."""
    keys = {index: load_private_key(burst.devices[index].key_path(burst.home)) for index in share}
    sent_at = datetime.now(UTC)
    messages = []
    for step in range(burst.count):
        for index in share:
            identity = burst.devices[index]
            seq = burst.first_seqs[index] + step
            document = _envelope(identity, index, seq, sent_at, burst.serial_offset)
            document["signature"] = sign(document, keys[index])
            payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            messages.append((index, seq, events_topic(identity.site_id, identity.device_id), payload))
    return messages


def _connect(burst: Burst, identity: DeviceIdentity) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{WORKER_NAME}-{identity.device_id}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
    client.max_inflight_messages_set(MAX_INFLIGHT_PER_DEVICE)
    client.max_queued_messages_set(0)
    client.connect(burst.mqtt_host, burst.mqtt_port, keepalive=60)
    client.loop_start()
    return client


def _publish(
    burst: Burst,
    messages: list[tuple[int, int, str, bytes]],
    clients: dict[int, mqtt.Client],
    start_at: float,
    rate_share: float,
) -> tuple[array, list[mqtt.MQTTMessageInfo]]:
    interval = 1.0 / (burst.rate * rate_share) if burst.rate else 0.0
    published_at = array("d", bytes(8 * len(messages)))
    infos = []
    while time.time() < start_at:
        time.sleep(0.001)

    for position, (index, _seq, topic, payload) in enumerate(messages):
        if interval:
            delay = start_at + position * interval - time.time()
            if delay > 0.0005:
                time.sleep(delay)
        published_at[position] = time.time()
        infos.append(clients[index].publish(topic, payload, qos=1))
    return published_at, infos


def _unacknowledged(infos: list[mqtt.MQTTMessageInfo], indices: array, share: list[int]) -> dict[int, int]:
    deadline = time.monotonic() + PUBACK_TIMEOUT_S
    missing = dict.fromkeys(share, 0)
    for info, index in zip(infos, indices, strict=True):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _published(info, remaining):
            missing[index] += 1
    return missing


def _published(info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool:
    try:
        info.wait_for_publish(timeout=timeout_s)
    except (RuntimeError, ValueError):
        return False
    return info.is_published()


# --- receipts ----------------------------------------------------------------------------------


class ReceiptListener:
    """Record when the collector first named each (device_id, seq) in a receipt.

    One connection as the service user reads every device's receipts topic of the
    site. Without service credentials, each device reads its own topic.
    """

    def __init__(self, settings: CommonSettings, site_id: str, devices: Sequence[DeviceIdentity]) -> None:
        self._lock = threading.Lock()
        self.first_seen: dict[str, dict[int, float]] = {}
        self.repeats = 0
        self._clients: list[mqtt.Client] = []
        credentials = settings.mqtt_credentials()
        if credentials is not None:
            self._subscribe(settings, credentials, receipts_topic(site_id, "+"), "service")
        else:
            for identity in devices:
                self._subscribe(
                    settings,
                    (identity.mqtt_username, identity.mqtt_password),
                    receipts_topic(identity.site_id, identity.device_id),
                    identity.device_id,
                )

    def _subscribe(
        self, settings: CommonSettings, credentials: tuple[str, str], topic: str, name: str
    ) -> None:
        subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kouan-load-receipts-{name}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(*credentials)
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=60)
        client.subscribe(topic, qos=1)
        client.loop_start()
        self._clients.append(client)
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError(f"Subscribing to {topic} timed out after 10 s. Check the broker and its ACL.")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(message.payload)
        with self._lock:
            seen = self.first_seen.setdefault(body["device_id"], {})
            for seq in body.get("seqs", []):
                if seq in seen:
                    self.repeats += 1
                else:
                    seen[seq] = now

    def count(self, device_id: str, first_seq: int, last_seq: int) -> int:
        with self._lock:
            seen = self.first_seen.get(device_id, {})
            return sum(1 for seq in seen if first_seq <= seq <= last_seq)

    def received_at(self, device_id: str, seq: int) -> float | None:
        with self._lock:
            return self.first_seen.get(device_id, {}).get(seq)

    def close(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients.clear()


# --- the generator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    site_id: str = "LOAD"
    devices: int = 4
    # (events per second, seconds) per step; one step is a steady rate.
    steps: list[tuple[float, float]] = field(default_factory=lambda: [(1000.0, 10.0)])
    # Events sent as fast as possible after the steps, or 0 for none.
    full_speed_events: int = 0
    workers: int = DEFAULT_WORKERS
    # Added to container serials. None picks one at random, so that a second run on
    # the same database starts new visits instead of extending the last run's.
    serial_offset: int | None = None

    def __post_init__(self) -> None:
        """Reject a plan that would leave a device without an event in some step."""
        if self.devices < 1:
            raise ValueError(f"{self.devices} devices is invalid; a load needs at least 1")
        if self.workers < 1:
            raise ValueError(f"{self.workers} workers is invalid; a load needs at least 1")
        for rate, seconds in self.steps:
            if rate <= 0 or seconds <= 0:
                raise ValueError(f"Step {rate:g} events/s for {seconds:g} s is invalid: both must be above 0")
            if rate * seconds < self.devices:
                raise ValueError(
                    f"Step {rate:g} events/s for {seconds:g} s is less than one event for each of the "
                    f"{self.devices} devices; raise the rate or the duration"
                )
        if 0 < self.full_speed_events < self.devices:
            raise ValueError(
                f"{self.full_speed_events} full-speed events is less than one for each of the "
                f"{self.devices} devices"
            )


@dataclass
class StepAccount:
    rate: float | None  # None: as fast as possible
    seconds: float | None
    sent: int = 0
    elapsed_s: float = 0.0
    receipted: int | None = None  # None for the edge transport, whose agents count receipts per device
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    burst: Burst | None = field(default=None, repr=False)
    log: PublishLog | None = field(default=None, repr=False)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "elapsed_s": round(self.elapsed_s, 3),
            "achieved_rate": round(self.achieved_rate, 1),
            "receipted": self.receipted,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "broker_unacknowledged": sum(self.log.unacknowledged) if self.log else None,
        }


@dataclass
class DeviceAccount:
    device_id: str
    first_seq: int
    last_seq: int = 0
    sent: int = 0
    broker_acked: int | None = 0  # None for the edge transport: the agent's PUBACKs are not counted here
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
    receipt_repeats: int = 0

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
        devices = f"{len(self.devices)} device" + ("s" if len(self.devices) != 1 else "")
        steps = f"{len(self.steps)} step" + ("s" if len(self.steps) != 1 else "")
        return (
            f"{self.transport}: {self.sent} events sent by {devices} in {steps}; "
            f"{self.receipted} receipted by the collector, {self.unreceipted} not receipted "
            f"{'after draining' if self.drained else 'when the drain timed out'} ({self.drain_s:.1f} s)."
        )

    def to_json(self) -> str:
        document = {
            "transport": self.transport,
            "site_id": self.site_id,
            "started_at": self.started_at,
            "sent": self.sent,
            "receipted": self.receipted,
            "unreceipted": self.unreceipted,
            "receipt_repeats": self.receipt_repeats,
            "drained": self.drained,
            "drain_s": round(self.drain_s, 3),
            "steps": [step.to_dict() for step in self.steps],
            "devices": [vars(device) for device in self.devices],
        }
        return json.dumps(document, indent=1, ensure_ascii=False)


class LoadGenerator:
    """Provision load devices, publish the plan's steps, and account for every event.

    ``identities`` are devices provisioned elsewhere (the benchmark's); without them
    :meth:`provision` creates ``plan.devices`` lanes at ``plan.site_id``.
    """

    def __init__(
        self,
        settings: CommonSettings,
        plan: LoadPlan,
        transport: str = "direct",
        identities: Sequence[DeviceIdentity] | None = None,
    ) -> None:
        if transport not in ("direct", "edge"):
            raise ValueError(f"Load transport {transport!r} is not one of direct, edge")
        self.settings = settings
        self.plan = plan
        self.transport = transport
        self.serial_offset = (
            random.Random().randrange(1_000_000) if plan.serial_offset is None else plan.serial_offset
        )
        self.identities: list[DeviceIdentity] = list(identities or [])
        self._provisioned = identities is not None
        self.next_seqs: list[int] = []
        self.receipts: ReceiptListener | None = None
        self.agents: list[Any] = []
        self.result = LoadResult(transport, plan.site_id, datetime.now(UTC).isoformat(), [], [])

    def provision(self) -> None:
        if not self._provisioned:
            self._provision_devices()
        if self.transport == "direct":
            self._connect_direct()
        else:
            self._start_agents()

    def _provision_devices(self) -> None:
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

    def _connect_direct(self) -> None:
        """Continue each device's seqs after the last one stored, and listen for receipts."""
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            for identity in self.identities:
                row = conn.execute(
                    "SELECT coalesce(max(seq), 0) FROM event_keys WHERE device_id = %s", (identity.device_id,)
                ).fetchone()
                self.next_seqs.append(int(row[0]) + 1 if row else 1)
        self.result.devices = [
            DeviceAccount(identity.device_id, first_seq)
            for identity, first_seq in zip(self.identities, self.next_seqs, strict=True)
        ]
        site_id = self.identities[0].site_id if self.identities else self.plan.site_id
        self.receipts = ReceiptListener(self.settings, site_id, self.identities)

    def _start_agents(self) -> None:
        from edge.agent import EdgeAgent
        from edge.settings import EdgeSettings

        for identity in self.identities:
            agent = EdgeAgent(
                identity, EdgeSettings(**self.settings.model_dump(), device_id=identity.device_id)
            )
            agent.start()
            self.agents.append(agent)
            first_seq = agent.outbox.last_seq() + 1
            self.result.devices.append(DeviceAccount(identity.device_id, first_seq, broker_acked=None))

    def run_step(self, rate: float, seconds: float) -> StepAccount:
        """Publish at ``rate`` events/s across all devices for ``seconds``."""
        if self.transport == "direct":
            return self._run_burst(rate, int(rate * seconds) // len(self.identities), seconds)
        return self._run_edge_step(rate, seconds)

    def run_full_speed(self, events: int) -> StepAccount:
        """Publish ``events`` (rounded down to a multiple of the devices) as fast as possible."""
        if self.transport != "direct":
            raise ValueError(f"Full-speed steps need the direct transport, not {self.transport!r}")
        return self._run_burst(None, events // len(self.identities), None)

    def _run_burst(self, rate: float | None, count: int, seconds: float | None) -> StepAccount:
        if count < 1:
            raise ValueError(
                f"Step has fewer events than the {len(self.identities)} devices. "
                "Send at least one per device."
            )
        burst = Burst(
            home=self.settings.home,
            mqtt_host=self.settings.mqtt_host,
            mqtt_port=self.settings.mqtt_port,
            devices=tuple(self.identities),
            first_seqs=tuple(self.next_seqs),
            count=count,
            rate=rate,
            workers=self.plan.workers,
            serial_offset=self.serial_offset,
        )
        log = publish_burst(burst)
        self.next_seqs = [first + burst.count for first in self.next_seqs]
        for index, account in enumerate(self.result.devices):
            account.sent += burst.count
            account.last_seq = burst.first_seqs[index] + burst.count - 1
            account.broker_acked += burst.count - log.unacknowledged[index]
        step = StepAccount(
            rate, seconds, sent=burst.total, elapsed_s=log.finished_at - log.started_at, burst=burst, log=log
        )
        self.result.steps.append(step)
        return step

    def _run_edge_step(self, rate: float, seconds: float) -> StepAccount:
        step = StepAccount(rate, seconds)
        total = int(rate * seconds)
        count = len(self.agents)
        started = time.monotonic()
        for index in range(total):
            delay = started + index / rate - time.monotonic()
            if delay > 0.001:
                time.sleep(delay)
            agent = self.agents[index % count]
            account = self.result.devices[index % count]
            seq = account.first_seq + account.sent
            payload = gate_passage(agent.identity.lane_id or "L00", index % count, seq, self.serial_offset)
            account.last_seq = agent.emit("gate.passage", payload, datetime.now(UTC))
            account.sent += 1
            step.sent += 1
        step.elapsed_s = time.monotonic() - started
        self.result.steps.append(step)
        return step

    def receipt_latencies(self, step: StepAccount) -> list[float | None]:
        """Return publish-to-receipt seconds of each event of a direct step, in log order."""
        assert step.burst is not None, "edge steps have no burst"
        assert step.log is not None
        assert self.receipts is not None, "call provision() first"
        devices = step.burst.devices
        latencies: list[float | None] = []
        for index, seq, published in zip(
            step.log.device_index, step.log.seq, step.log.published_at, strict=True
        ):
            received = self.receipts.received_at(devices[index].device_id, seq)
            latencies.append(None if received is None else received - published)
        return latencies

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until the collector has receipted every event sent; return whether it did."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            self._count_receipts()
            if self.result.unreceipted == 0:
                break
            time.sleep(0.1)
        self._count_receipts()
        self.result.drain_s = time.monotonic() - started
        self.result.drained = self.result.unreceipted == 0
        if self.receipts is not None:
            self.result.receipt_repeats = self.receipts.repeats
            for step in self.result.steps:
                self._account_step(step)
        return self.result.drained

    def _count_receipts(self) -> None:
        if self.receipts is not None:
            for account in self.result.devices:
                account.receipted = self.receipts.count(
                    account.device_id, account.first_seq, account.last_seq
                )
            return
        for agent, account in zip(self.agents, self.result.devices, strict=False):
            account.receipted = agent.receipted

    def _account_step(self, step: StepAccount) -> None:
        latencies = [value for value in self.receipt_latencies(step) if value is not None]
        step.receipted = len(latencies)
        if len(latencies) >= 2:
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            step.latency_p50_ms, step.latency_p99_ms = round(cuts[49] * 1000, 1), round(cuts[98] * 1000, 1)

    def close(self) -> None:
        if self.receipts is not None:
            self.receipts.close()
        for agent in self.agents:
            agent.stop()


def run_load(
    settings: CommonSettings,
    plan: LoadPlan,
    transport: str = "direct",
    drain_timeout_s: float = 60.0,
    on_step: Callable[[str], None] | None = None,
) -> LoadResult:
    """Provision, run every step of the plan, drain, and return the account.

    ``on_step`` receives a line describing each step as it starts, and the drain.
    """
    announce = on_step or (lambda text: None)
    generator = LoadGenerator(settings, plan, transport)
    generator.provision()
    steps = len(plan.steps) + (1 if plan.full_speed_events else 0)
    try:
        for number, (rate, seconds) in enumerate(plan.steps, start=1):
            announce(f"Step {number}/{steps}: {rate:,.0f} events/s for {seconds:g} s")
            generator.run_step(rate, seconds)
        if plan.full_speed_events:
            announce(f"Step {steps}/{steps}: {plan.full_speed_events:,} events as fast as possible")
            generator.run_full_speed(plan.full_speed_events)
        announce(f"Waiting up to {drain_timeout_s:g} s for the collector's receipts")
        generator.drain(drain_timeout_s)
    finally:
        generator.close()
    return generator.result
