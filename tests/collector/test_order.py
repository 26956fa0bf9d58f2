"""Order independence on the real database, and two collectors sharing one subscription."""

from __future__ import annotations

import itertools
import json

from kouan.devices import ensure_lane, ensure_site
from tests.collector.support import (
    Devices,
    Store,
    at,
    decisions,
    declare,
    eseal,
    event_id_of,
    gate_passage,
    new_container_number,
    open_alerts,
    reason_codes,
    scan,
)
from tests.conftest import start_collector, wait_for

SEAL = "SL20261205"


def scenario(devices: Devices, number: str) -> list[tuple[str, bytes]]:
    """Four events in device order: misread seal at entry, suspicious scan, opened e-seal, exit."""
    return [
        devices.event(
            "IN01", gate_passage([number], seals=("SL999",), weight_kg=20_000.0), occurred_at=at(0)
        ),
        devices.event("SCAN01", scan(number, "suspicious"), "scan.result", at(20)),
        devices.event("ES01", eseal(number, SEAL, opened=True), "seal.status", at(30)),
        devices.event(
            "OUT01",
            gate_passage([number], lane="OUT01", direction="out", seals=(SEAL,), decision=True),
            occurred_at=at(60),
        ),
    ]


def conclusions(db, site_id: str, number: str, events: list[tuple[str, bytes]]) -> dict:
    """The visit, its open alerts and evidence, with event ids replaced by device-order index."""
    index = {event_id_of(raw): position for position, (_, raw) in enumerate(events)}
    visit = db.execute(
        """
        SELECT status, customs_status, flags, seal_numbers, entered_at, scanned_at, exited_at, event_count
        FROM container_visits WHERE site_id = %s AND container_number = %s
        """,
        (site_id, number),
    ).fetchall()
    alerts = []
    for alert in open_alerts(db, site_id, number):
        evidence = dict(alert["evidence"])
        evidence["event_ids"] = [index[item] for item in evidence.get("event_ids", [])]
        alerts.append((alert["rule_code"], alert["severity"], json.dumps(evidence, sort_keys=True)))
    return {"visit": visit, "alerts": sorted(alerts)}


def test_every_arrival_order_same_conclusions(stack, db, site_id):
    devices = Devices(stack.home, stack.database_url, site_id)
    store = Store(db, stack.database_url)
    results = []
    for order in itertools.permutations(range(4)):
        number = new_container_number()
        declare(db, site_id, [{"number": number, "seals": [SEAL], "weight": 20_000.0}])
        events = scenario(devices, number)
        issued = None
        for position in order:
            result = store.write(events[position])
            if result.commands:
                issued = (order.index(3) == 3, result.commands[0][1].decision)
        results.append((order, conclusions(db, site_id, number, events), issued))

    expected = results[0][1]
    assert expected["alerts"] == sorted(
        [
            (
                "eseal_abnormal",
                "critical",
                json.dumps(
                    {
                        "event_ids": [2],
                        "observed": [
                            {
                                "sealed": False,
                                "opened": True,
                                "tampered": False,
                                "approved_opening": False,
                                "battery_low": False,
                            }
                        ],
                    },
                    sort_keys=True,
                ),
            ),
            (
                "scan_suspicious",
                "critical",
                json.dumps({"event_ids": [1], "observed": "suspicious"}, sort_keys=True),
            ),
        ]
    )
    for order, found, _ in results:
        assert found == expected, order
    for order, _, (arrived_last, decision) in results:
        if arrived_last:
            assert decision == "hold", order
    assert len(decisions(db, site_id)) == 24


def _second_site(db, site_id: str) -> str:
    other = f"{site_id}b"
    ensure_site(db, other, f"测试场站 {other}", "CNSHA", "2248")
    for lane, direction in (("IN01", "in"), ("OUT01", "out"), ("SCAN01", "scan")):
        ensure_lane(db, other, lane, direction)
    return other


STATUSES = [
    ("released", ()),
    ("held", ()),
    ("inspection_ordered", ()),
    ("released", ("quarantine",)),
    (None, ()),  # undeclared
    ("released", ()),
]


def _plan(db, site_id: str, devices: Devices, numbers: list[str]) -> list[tuple[str, bytes]]:
    events = []
    for position, number in enumerate(numbers):
        status, holds = STATUSES[position % len(STATUSES)]
        if status is not None:
            declare(db, site_id, [{"number": number, "seals": [SEAL], "weight": 20_000.0}], status, holds)
        minute = position * 2
        seals = (SEAL,) if position % 4 else ("SL999",)
        events.append(devices.event("IN01", gate_passage([number], seals=seals), occurred_at=at(minute)))
        if position % 3 == 0:
            events.append(devices.event("SCAN01", scan(number, "clear"), "scan.result", at(minute + 30)))
        events.append(
            devices.event(
                "OUT01",
                gate_passage([number], lane="OUT01", direction="out", seals=seals, decision=True),
                occurred_at=at(minute + 90),
            )
        )
    return events


def _site_conclusions(db, site_id: str) -> dict:
    visits = db.execute(
        "SELECT container_number, status, customs_status, flags FROM container_visits "
        "WHERE site_id = %s ORDER BY 1",
        (site_id,),
    ).fetchall()
    alerts = sorted((item["container_number"], item["rule_code"]) for item in open_alerts(db, site_id))
    made = sorted(
        (tuple(item["container_numbers"]), item["decision"], tuple(reason_codes(item)))
        for item in decisions(db, site_id)
    )
    return {"visits": visits, "alerts": alerts, "decisions": made}


def test_two_collectors_reach_same_conclusions_as_one(
    stack, db, site_id, make_device, processes, raw_publisher
):
    other = _second_site(db, site_id)
    numbers = [new_container_number() for _ in range(12)]
    received: dict[str, list[dict]] = {site_id: [], other: []}
    plans = {}
    for site in (site_id, other):
        devices = Devices(stack.home, stack.database_url, site)
        for lane in ("IN01", "OUT01", "SCAN01"):
            devices.by_lane[lane] = make_device(site, lane, "scanner" if lane == "SCAN01" else "lane")
        plans[site] = (devices, _plan(db, site, devices, numbers))

    start_collector(processes, site_id, 1)
    start_collector(processes, other, 1)
    start_collector(processes, other, 2)

    for site, (devices, _) in plans.items():
        lane = devices.by_lane["OUT01"]
        listener = raw_publisher(lane)
        listener.client.on_message = lambda client, userdata, message, site=site: received[site].append(
            json.loads(message.payload)
        )
        listener.client.subscribe(f"kouan/v1/{site}/{lane.device_id}/commands", qos=1)
    for devices, events in plans.values():
        publishers = {identity.device_id: raw_publisher(identity) for identity in devices.by_lane.values()}
        for topic, raw in events:
            publishers[topic.split("/")[3]].publish(topic, raw)

    def decided() -> bool:
        """both sites have a decision for every exit passage, received at the lane"""
        return all(len(received[site]) == len(numbers) for site in received)

    wait_for(decided, timeout=60)
    one, two = _site_conclusions(db, site_id), _site_conclusions(db, other)
    assert one == two
    assert len(one["decisions"]) == len(numbers)
    assert {item["decision"] for item in received[site_id]} == {"release", "hold", "manual"}
    logs = [process.log_path.read_text() for process in processes.processes[1:]]
    assert all("Decision " in log for log in logs), "both collectors of the shared group decided"
