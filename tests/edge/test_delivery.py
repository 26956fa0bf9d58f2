"""Store-and-forward end to end: camera endpoint -> outbox -> Mosquitto -> collector -> TimescaleDB.

Each test runs real ``kouan edge`` and ``kouan collector`` processes against the
session's private broker and database, kills or stops one of them mid-burst, and
counts what was accepted (published), receipted (acknowledged) and stored.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kouan.devices import DeviceIdentity
from kouan.settings import CommonSettings
from kouan.stack import manager
from tests.conftest import start_collector, stored_count, wait_for
from tests.edge.conftest import kill_process, post_frame, scan_frame


def outbox_last_seq(home: Path, device_id: str) -> int:
    """Read the last seq the outbox allocated, straight from its SQLite file."""
    path = DeviceIdentity.directory(home, device_id) / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM counters WHERE name = 'last_seq'").fetchone()[0])


def stored_seqs(db, device_id: str) -> list[int]:
    return [
        seq for (seq,) in db.execute("SELECT seq FROM events WHERE device_id = %s ORDER BY seq", (device_id,))
    ]


class Burst:
    """Post scan frames in a background thread until stopped; keep the seqs accepted."""

    def __init__(self, port: int, interval_s: float = 0.0, limit: int | None = None) -> None:
        self.port = port
        self.interval_s = interval_s
        self.limit = limit
        self.accepted: list[int] = []
        self.rejected: list[tuple[int, dict]] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Burst:
        self._thread.start()
        return self

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set() and (self.limit is None or number < self.limit):
            number += 1
            try:
                status, body = post_frame(self.port, scan_frame(number), timeout=5)
            except (OSError, http.client.HTTPException):
                # The agent was killed before responding, so the frame counts as not accepted.
                self.failed += 1
                self._stop.wait(0.05)
                continue
            if status == 201:
                self.accepted.append(body["seq"])
            else:
                self.rejected.append((status, body))
            if self.interval_s:
                self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class EventObserver:
    """Subscribe (non-shared, clean session) to a device's events and record seqs as the broker forwards them.

    The collector's arrival order is not the device's publish order: after a broker
    restart, Mosquitto may deliver live messages to the collector's persistent
    session before the ones it queued while the collector was away. An observer
    that reconnects within a second of the broker, well before the agent's backoff
    brings it back, sees the agent's publish order.
    """

    def __init__(self, stack, identity) -> None:
        self.seqs: list[int] = []
        self.topic = f"kouan/v1/{identity.site_id}/{identity.device_id}/events"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"observer-{identity.device_id}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(*CommonSettings().mqtt_credentials())
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = lambda client, *_: client.subscribe(self.topic, qos=1)
        self.client.on_message = lambda client, userdata, message: self.seqs.append(
            json.loads(message.payload)["seq"]
        )
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()
        wait_for(lambda: self.client.is_connected(), timeout=10)

    def first_seen(self) -> list[int]:
        """Return each seq once, at its first publication after the broker restart."""
        seen: set[int] = set()
        ordered = []
        for seq in self.seqs:
            if seq not in seen:
                seen.add(seq)
                ordered.append(seq)
        return ordered

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def duplicate_rows(db, device_id: str) -> int:
    (count,) = db.execute(
        "SELECT count(*) FROM (SELECT seq FROM events WHERE device_id = %s "
        "GROUP BY seq HAVING count(*) > 1) d",
        (device_id,),
    ).fetchone()
    return int(count)


def test_edge_killed_mid_burst_loses_nothing(stack, db, site_id, make_device, processes, start_edge):
    identity = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    edge = start_edge(identity.device_id)
    edge.wait_online()

    # Four cameras post at once, so events queue in the outbox faster than they drain.
    bursts = [Burst(edge.port).start() for _ in range(4)]
    wait_for(lambda: sum(len(burst.accepted) for burst in bursts) >= 400, timeout=60)
    edge.kill()
    for burst in bursts:
        burst.stop()
    accepted_before_kill = sorted(seq for burst in bursts for seq in burst.accepted)
    outbox_accepted = outbox_last_seq(stack.home, identity.device_id)
    stored_at_kill = stored_count(db, identity.device_id)

    restarted = start_edge(identity.device_id, port=edge.port)
    restarted.wait_online()
    wait_for(lambda: restarted.status()["outbox_depth"] == 0, timeout=60)
    wait_for(lambda: stored_count(db, identity.device_id) == outbox_accepted, timeout=30)

    print(
        f"edge kill -9: {len(accepted_before_kill)} accepted (HTTP 201) before the kill, "
        f"{outbox_accepted} in the outbox, {stored_at_kill} stored at the kill, "
        f"{stored_count(db, identity.device_id)} stored after restart"
    )
    assert len(accepted_before_kill) >= 400
    assert outbox_accepted >= len(accepted_before_kill)
    assert stored_at_kill < outbox_accepted
    assert stored_seqs(db, identity.device_id) == list(range(1, outbox_accepted + 1))
    assert set(accepted_before_kill) <= set(stored_seqs(db, identity.device_id))
    assert duplicate_rows(db, identity.device_id) == 0
    assert restarted.status()["last_seq"] == outbox_accepted


def test_collector_killed_mid_burst_stores_every_event_once(
    stack, db, site_id, make_device, processes, start_edge
):
    identity = make_device(site_id, "IN01")
    collector = start_collector(processes, site_id, 1)
    edge = start_edge(identity.device_id)
    edge.wait_online()

    burst = Burst(edge.port, limit=600).start()
    wait_for(lambda: stored_count(db, identity.device_id) >= 100, timeout=60)
    kill_process(collector)
    stored_at_kill = stored_count(db, identity.device_id)
    burst._thread.join(timeout=120)
    start_collector(processes, site_id, 1)
    wait_for(lambda: edge.status()["outbox_depth"] == 0, timeout=120)

    published = len(burst.accepted)
    print(
        f"collector kill -9: {published} published, {stored_at_kill} stored at the kill, "
        f"{stored_count(db, identity.device_id)} stored, outbox depth {edge.status()['outbox_depth']}"
    )
    assert published == 600
    assert stored_at_kill < published
    assert stored_count(db, identity.device_id) == published
    assert stored_seqs(db, identity.device_id) == list(range(1, published + 1))
    assert duplicate_rows(db, identity.device_id) == 0
    assert edge.status()["outbox_depth"] == 0


def test_full_outbox_rejects_overflow_and_raises_alert(
    stack, db, site_id, make_device, processes, start_edge
):
    identity = make_device(site_id, "IN01")
    edge = start_edge(identity.device_id, outbox_capacity=25, status_interval_s=1)
    edge.wait_online()

    answers = [post_frame(edge.port, scan_frame(number)) for number in range(40)]
    accepted = [body["seq"] for status, body in answers if status == 201]
    rejected = [body for status, body in answers if status == 503]
    time.sleep(1.5)  # one status interval: the status message now reports the rejections
    start_collector(processes, site_id, 1)
    wait_for(lambda: stored_count(db, identity.device_id) == 25, timeout=60)
    alert = wait_for(
        lambda: db.execute(
            "SELECT severity, evidence, message_zh FROM alerts "
            "WHERE rule_code = 'outbox_full' AND device_id = %s",
            (identity.device_id,),
        ).fetchone(),
        timeout=30,
    )

    print(f"outbox full: {len(accepted)} accepted, {len(rejected)} rejected, alert evidence {alert[1]}")
    assert accepted == list(range(1, 26))
    assert len(rejected) == 15
    assert {body["error"] for body in rejected} == {"outbox_full"}
    assert stored_seqs(db, identity.device_id) == list(range(1, 26))
    assert alert[0] == "critical"
    assert alert[1]["outbox_rejected"] == 15
    assert alert[1]["outbox_capacity"] == 25
    assert "已拒收 15 条" in alert[2]
    wait_for(lambda: edge.status()["outbox_depth"] == 0, timeout=30)
    status, body = post_frame(edge.port, scan_frame(99))
    assert status == 201
    assert body["seq"] == 26


@pytest.mark.slow
def test_broker_down_two_minutes_delivers_all_in_order(
    stack, db, site_id, make_device, processes, start_edge
):
    identity = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    edge = start_edge(identity.device_id)
    edge.wait_online()
    observer = EventObserver(stack, identity)
    burst = Burst(edge.port, interval_s=0.1).start()
    wait_for(lambda: stored_count(db, identity.device_id) >= 20, timeout=30)

    manager._stop_mosquitto(stack)
    stopped_at = time.monotonic()
    accepted_at_stop = len(burst.accepted)
    wait_for(lambda: edge.status()["state"] == "offline", timeout=30)
    time.sleep(max(0.0, 120 - (time.monotonic() - stopped_at)))
    accepted_during_outage = len(burst.accepted) - accepted_at_stop
    stored_during_outage = stored_count(db, identity.device_id)
    manager.up(stack)
    time.sleep(5)
    burst.stop()
    published = len(burst.accepted)
    wait_for(lambda: edge.status()["outbox_depth"] == 0, timeout=120)
    wait_for(lambda: stored_count(db, identity.device_id) == published, timeout=30)

    print(
        f"broker down 120 s: {published} published ({accepted_during_outage} during the outage), "
        f"{stored_during_outage} stored before restart, {stored_count(db, identity.device_id)} stored, "
        f"connects {edge.status()['connects']}"
    )
    assert accepted_during_outage >= 600
    assert stored_during_outage < published
    assert burst.accepted == list(range(1, published + 1))
    assert stored_seqs(db, identity.device_id) == list(range(1, published + 1))
    observed = observer.first_seen()
    assert observed == sorted(observed)
    assert observed[-1] == published
    assert observed == list(range(observed[0], published + 1))
    assert duplicate_rows(db, identity.device_id) == 0
    observer.close()
    gaps = db.execute(
        "SELECT count(*) FROM alerts WHERE rule_code = 'seq_gap' AND device_id = %s", (identity.device_id,)
    ).fetchone()[0]
    assert gaps == 0
    assert edge.status()["connects"] >= 2
