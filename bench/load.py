"""Load generator: signed envelopes from provisioned devices, published with QoS 1.

Python cannot sign and publish 10,000 events/s in one process on top of a broker,
a database and a collector, so each phase runs in two steps:

1. every worker process builds and signs its share of the envelopes (canonical JSON
   plus Ed25519, exactly as an edge agent does) before the clock starts;
2. the workers then publish them through one MQTT connection per device, each as
   that device's broker user, at a fixed total rate or as fast as they can, and
   record the wall-clock time of every publish call.

The parent compares those times with the receipts the collector sends after its
commit (see ``bench.probes.ReceiptListener``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kouan.contract import events_topic, isoformat
from kouan.devices import DeviceIdentity
from kouan.identifiers import iso6346_check_digit
from kouan.signing import load_private_key, sign

# Owner codes of real carriers, so that the collector's ISO 6346 checks pass.
OWNER_CODES = ("MSCU", "MAEU", "CMAU", "COSU", "OOLU", "EGLU", "HLXU", "ONEU")
# Unacknowledged QoS 1 PUBLISH packets that paho allows per device connection (its
# default is 20). paho queues the rest locally, so a low value throttles the rate.
MAX_INFLIGHT_PER_DEVICE = 1000
PUBACK_TIMEOUT_S = 60.0


class EnvelopeSource(Protocol):
    """Build the unsigned envelope of one event of one device."""

    def __call__(self, identity: DeviceIdentity, seq: int, sent_at: datetime) -> dict[str, Any]: ...


def container_number(device_index: int, seq: int) -> str:
    """Return a valid ISO 6346 number; consecutive seqs of a device share one container.

    Two events per container (a gate-in passage and a re-read) give the correlation
    step both new visits and updates of existing ones.
    """
    serial = (device_index * 1_000_003 + seq // 2) % 1_000_000
    first10 = f"{OWNER_CODES[device_index % len(OWNER_CODES)]}{serial:06d}"
    return first10 + iso6346_check_digit(first10)


def gate_passage(identity: DeviceIdentity, seq: int, sent_at: datetime) -> dict[str, Any]:
    """Build a gate-in passage with one container, one seal and a weight, like a real lane's."""
    device_index = int(identity.device_id.rsplit("-", 1)[-1])
    number = container_number(device_index, seq)
    occurred = isoformat(sent_at - timedelta(milliseconds=300))
    return {
        "contract_version": 1,
        "event_id": str(uuid.uuid4()),
        "device_id": identity.device_id,
        "site_id": identity.site_id,
        "seq": seq,
        "kind": "gate.passage",
        "occurred_at": occurred,
        "recorded_at": occurred,
        "sent_at": isoformat(sent_at),
        "payload": {
            "passage_id": f"{identity.lane_id}-{seq}",
            "lane_id": identity.lane_id,
            "direction": "in",
            "tractor_plate": {"raw": "沪A12345", "source": "lpr", "confidence": 0.97},
            "containers": [
                {
                    "container_number": {"raw": number, "source": "ocr", "confidence": 0.93},
                    "seals": [{"raw": f"CN{seq % 10_000_000:07d}", "source": "ocr", "confidence": 0.9}],
                }
            ],
            "gross_weight": {"kg": 28_400.0 + seq % 500},
            "decision_requested": False,
        },
    }


@dataclass(frozen=True)
class LoadPlan:
    """Events of one phase: ``count`` events per device from ``first_seq`` on."""

    home: Path
    mqtt_port: int
    devices: Sequence[DeviceIdentity]
    first_seq: int
    count: int
    rate: float | None  # events/s over all devices; None publishes as fast as possible
    workers: int = 2

    @property
    def total(self) -> int:
        return len(self.devices) * self.count


@dataclass
class PublishLog:
    """Publish times (Unix seconds) of one phase, one row per event."""

    device_index: np.ndarray  # position in LoadPlan.devices
    seq: np.ndarray
    published_at: np.ndarray
    started_at: float
    finished_at: float  # last PUBACK
    unacknowledged: int  # publishes without PUBACK within PUBACK_TIMEOUT_S

    @property
    def offered_rate(self) -> float:
        span = float(self.published_at.max() - self.published_at.min())
        return len(self.seq) / span if span > 0 else float("nan")


def run_load(plan: LoadPlan, source: EnvelopeSource = gate_passage) -> PublishLog:
    """Sign the plan's envelopes in worker processes, then publish them all at once."""
    context = mp.get_context("fork")
    ready = context.Barrier(plan.workers + 1)
    start_at = context.Value("d", 0.0)
    results = context.Queue()
    shares = [list(range(index, len(plan.devices), plan.workers)) for index in range(plan.workers)]
    processes = [
        context.Process(
            target=_worker, args=(plan, source, share, ready, start_at, results), name=f"bench-load-{n}"
        )
        for n, share in enumerate(shares)
        if share
    ]
    for process in processes:
        process.start()

    ready.wait()  # every worker has signed its envelopes and connected
    start_at.value = time.time() + 0.2
    ready.wait()
    parts = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return _merge(parts)


def worker_pids() -> list[int]:
    """Return the pids of running load workers, for CPU and memory accounting."""
    return [child.pid for child in mp.active_children() if child.name.startswith("bench-load-") and child.pid]


def _merge(parts: list[dict[str, Any]]) -> PublishLog:
    return PublishLog(
        device_index=np.concatenate([part["device_index"] for part in parts]),
        seq=np.concatenate([part["seq"] for part in parts]),
        published_at=np.concatenate([part["published_at"] for part in parts]),
        started_at=min(part["started_at"] for part in parts),
        finished_at=max(part["finished_at"] for part in parts),
        unacknowledged=sum(part["unacknowledged"] for part in parts),
    )


def _worker(
    plan: LoadPlan,
    source: EnvelopeSource,
    share: list[int],
    ready: Any,
    start_at: Any,
    results: Any,
) -> None:
    os.environ.pop("KOUAN_LOG_LEVEL", None)
    messages = _sign_share(plan, source, share)
    clients = {index: _connect(plan, plan.devices[index]) for index in share}

    ready.wait()
    ready.wait()
    published_at, infos = _publish(
        plan, messages, clients, start_at.value, rate_share=len(share) / len(plan.devices)
    )
    unacknowledged = _wait_for_pubacks(infos)
    finished_at = time.time()
    for client in clients.values():
        client.disconnect()
        client.loop_stop()

    results.put(
        {
            "device_index": np.array([index for index, _, _, _ in messages], dtype=np.int32),
            "seq": np.array([seq for _, seq, _, _ in messages], dtype=np.int64),
            "published_at": published_at,
            "started_at": float(published_at.min()) if len(published_at) else finished_at,
            "finished_at": finished_at,
            "unacknowledged": unacknowledged,
        }
    )


def _sign_share(
    plan: LoadPlan, source: EnvelopeSource, share: list[int]
) -> list[tuple[int, int, str, bytes]]:
    """Return (device index, seq, topic, signed bytes), interleaved across devices."""
    keys = {index: load_private_key(plan.devices[index].key_path(plan.home)) for index in share}
    sent_at = datetime.now(UTC)
    messages = []
    for seq in range(plan.first_seq, plan.first_seq + plan.count):
        for index in share:
            identity = plan.devices[index]
            document = source(identity, seq, sent_at)
            document["signature"] = sign(document, keys[index])
            payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            messages.append((index, seq, events_topic(identity.site_id, identity.device_id), payload))
    return messages


def _connect(plan: LoadPlan, identity: DeviceIdentity) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-{identity.device_id}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
    client.max_inflight_messages_set(MAX_INFLIGHT_PER_DEVICE)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", plan.mqtt_port, keepalive=60)
    client.loop_start()
    return client


def _publish(
    plan: LoadPlan,
    messages: list[tuple[int, int, str, bytes]],
    clients: dict[int, mqtt.Client],
    start_at: float,
    rate_share: float,
) -> tuple[np.ndarray, list[mqtt.MQTTMessageInfo]]:
    interval = 1.0 / (plan.rate * rate_share) if plan.rate else 0.0
    published_at = np.zeros(len(messages), dtype=np.float64)
    infos = []
    while time.time() < start_at:
        time.sleep(0.001)

    start = start_at
    for position, (index, _seq, topic, payload) in enumerate(messages):
        if interval:
            delay = start + position * interval - time.time()
            if delay > 0.0005:
                time.sleep(delay)
        published_at[position] = time.time()
        infos.append(clients[index].publish(topic, payload, qos=1))
    return published_at, infos


def _wait_for_pubacks(infos: list[mqtt.MQTTMessageInfo]) -> int:
    deadline = time.monotonic() + PUBACK_TIMEOUT_S
    missing = 0
    for info in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _published(info, remaining):
            missing += 1
    return missing


def _published(info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool:
    try:
        info.wait_for_publish(timeout=timeout_s)
    except (RuntimeError, ValueError):
        return False
    return info.is_published()
