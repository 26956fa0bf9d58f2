"""Probes that run beside the load: gate decisions and container status queries.

Each probe runs in its own process so that its timing does not wait on the
orchestrating process's GIL, and returns plain arrays of Unix timestamps or
latencies through a queue.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kouan.contract import commands_topic, events_topic, new_envelope
from kouan.devices import DeviceIdentity
from kouan.signing import load_private_key, sign

# Maximum status requests awaiting a response: half a second of requests at 200/s.
# Past this the API is too far behind, so a request that falls due is counted as
# not sent instead of piling up in the client.
MAX_OUTSTANDING_REQUESTS = 100
# How long a decision probe waits for the lane's command before it counts as unanswered.
DECISION_TIMEOUT_S = 2.0


def percentiles_ms(values_s: np.ndarray) -> dict[str, float]:
    """Return p50, p99 and max of latencies given in seconds, in milliseconds."""
    if len(values_s) == 0:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "n": 0}
    return {
        "p50_ms": float(np.percentile(values_s, 50) * 1000),
        "p99_ms": float(np.percentile(values_s, 99) * 1000),
        "max_ms": float(values_s.max() * 1000),
        "n": int(len(values_s)),
    }


class ProbeProcess:
    """A probe running in a child process until ``finish`` collects its result."""

    def __init__(self, target: Any, *args: Any, name: str) -> None:
        context = mp.get_context("fork")
        self._stop = context.Event()
        self._ready = context.Event()
        self._results = context.Queue()
        self.process = context.Process(
            target=target, args=(*args, self._ready, self._stop, self._results), name=name, daemon=True
        )

    def start(self, timeout_s: float = 30.0) -> ProbeProcess:
        self.process.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"probe {self.process.name} did not become ready within {timeout_s:.0f} s")
        return self

    def finish(self, timeout_s: float = 180.0) -> Any:
        self._stop.set()
        result = self._results.get(timeout=timeout_s)
        self.process.join(timeout=10)
        return result


def _service_client(port: int, credentials: tuple[str, str], client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(*credentials)
    client.connect("127.0.0.1", port, keepalive=60)
    return client


# --- gate decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionProbe:
    home: Path
    mqtt_port: int
    identity: DeviceIdentity  # an exit-lane device
    container_numbers: tuple[str, ...]
    interval_s: float = 0.2


def decision_prober(probe: DecisionProbe, first_seq: int) -> ProbeProcess:
    """Send exit passages that request a decision and time the lane's command."""
    return ProbeProcess(_probe_decisions, probe, first_seq, name="bench-decisions")


def _probe_decisions(probe: DecisionProbe, first_seq: int, ready: Any, stop: Any, results: Any) -> None:
    identity = probe.identity
    key = load_private_key(identity.key_path(probe.home))
    answered: dict[str, float] = {}
    decisions: dict[str, str] = {}

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        try:
            command = json.loads(message.payload)
        except ValueError:
            return
        passage_id = command.get("passage_id")
        if passage_id and passage_id not in answered:
            answered[passage_id] = now
            decisions[passage_id] = str(command.get("decision"))

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
    client.on_message = on_message
    client.connect("127.0.0.1", probe.mqtt_port, keepalive=60)
    client.subscribe(commands_topic(identity.site_id, identity.device_id), qos=1)
    client.loop_start()
    time.sleep(0.3)
    ready.set()

    sent: dict[str, float] = {}
    seq = first_seq
    while not stop.is_set():
        passage_id = f"probe-{seq}"
        number = probe.container_numbers[seq % len(probe.container_numbers)]
        payload = _signed_exit_passage(identity, key, seq, passage_id, number)
        sent[passage_id] = time.time()
        client.publish(events_topic(identity.site_id, identity.device_id), payload, qos=1)
        seq += 1
        stop.wait(probe.interval_s)

    time.sleep(DECISION_TIMEOUT_S)
    client.disconnect()
    client.loop_stop()
    latencies = [
        answered[passage_id] - at
        for passage_id, at in sent.items()
        if passage_id in answered and answered[passage_id] - at <= DECISION_TIMEOUT_S
    ]
    results.put(
        {
            "latencies": np.array(latencies),
            "sent": len(sent),
            "next_seq": seq,
            "decisions": sorted(set(decisions.values())),
        }
    )


def _signed_exit_passage(identity: DeviceIdentity, key: Any, seq: int, passage_id: str, number: str) -> bytes:
    now = datetime.now(UTC)
    payload = {
        "passage_id": passage_id,
        "lane_id": identity.lane_id,
        "direction": "out",
        "tractor_plate": {"raw": "沪A12345", "source": "lpr", "confidence": 0.97},
        "containers": [{"container_number": {"raw": number, "source": "ocr", "confidence": 0.95}}],
        "decision_requested": True,
    }
    document = new_envelope(identity.device_id, identity.site_id, seq, "gate.passage", payload, now, now, now)
    document["signature"] = sign(document, key)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# --- container status queries -----------------------------------------------------------


def status_query_driver(
    base_url: str, container_numbers: list[str], rate: float, headers: dict[str, str]
) -> ProbeProcess:
    """Request container status at a fixed rate (open loop) until stopped."""
    return ProbeProcess(
        _drive_status_queries, base_url, container_numbers, rate, headers, name="bench-status-queries"
    )


def _drive_status_queries(
    base_url: str,
    numbers: list[str],
    rate: float,
    headers: dict[str, str],
    ready: Any,
    stop: Any,
    results: Any,
) -> None:
    results.put(asyncio.run(_status_queries(base_url, numbers, rate, headers, ready, stop)))


async def _status_queries(
    base_url: str, numbers: list[str], rate: float, headers: dict[str, str], ready: Any, stop: Any
) -> dict[str, Any]:
    # aiohttp rather than httpx: on the benchmark's machine httpx's client spent about
    # 1.4 ms of CPU per request, which on 2 cores would slow the API it measures.
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)

    async with aiohttp.ClientSession(
        base_url, headers=headers, connector=connector, timeout=timeout
    ) as client:
        async with client.get("/healthz") as response:
            await response.read()
        ready.set()

        async def one(number: str) -> None:
            began = time.perf_counter()
            try:
                async with client.get(f"/api/v1/containers/{number}") as response:
                    await response.read()
                    code = response.status
            except (aiohttp.ClientError, TimeoutError):
                code = 0
            latencies.append(time.perf_counter() - began)
            statuses[code] = statuses.get(code, 0) + 1

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        due_count, sent = 0, 0
        while not stop.is_set():
            delay = start + due_count / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due_count += 1
            if len(tasks) >= MAX_OUTSTANDING_REQUESTS:
                continue
            task = asyncio.create_task(one(numbers[sent % len(numbers)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        sending_s = time.perf_counter() - start
        await asyncio.gather(*tasks)

    return {
        "latencies": np.array(latencies),
        "statuses": statuses,
        "achieved_rate": sent / sending_s,
        "not_sent": due_count - sent,
    }
