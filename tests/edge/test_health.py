"""Device health in the collector: seq gaps and clock drift seen from the status message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import passage, signed_event, stored_count, wait_for


@pytest.fixture
def lane(site_id, make_device, processes):
    """A lane device and a collector that reports a seq gap as soon as it sees one."""
    identity = make_device(site_id, "IN01")
    process = processes.start(
        "collector",
        env={
            "KOUAN_SITE_FILTER": site_id,
            "KOUAN_SHARE_GROUP": f"g-{site_id}",
            "KOUAN_CLIENT_ID": f"collector-{site_id}-health",
            "KOUAN_SEQ_GAP_GRACE_S": "0",
        },
        log="collector",
    )
    wait_for(lambda: b"subscribed in group" in process.log_path.read_bytes(), timeout=30)
    return identity


def alert(db, rule: str, device_id: str):
    return db.execute(
        "SELECT status, evidence FROM alerts WHERE rule_code = %s AND subject_id = %s ORDER BY alert_id DESC",
        (rule, device_id),
    ).fetchone()


def test_seq_gap_raised_then_cleared_when_filled(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    for seq in (1, 2, 5):
        publisher.publish(
            topic, signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        )
    wait_for(lambda: alert(db, "seq_gap", lane.device_id))
    raised = alert(db, "seq_gap", lane.device_id)
    for seq in (3, 4):
        publisher.publish(
            topic, signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        )
    wait_for(lambda: stored_count(db, lane.device_id) == 5)
    wait_for(lambda: alert(db, "seq_gap", lane.device_id)[0] == "resolved")
    contiguous = db.execute(
        "SELECT contiguous_seq FROM devices WHERE device_id = %s", (lane.device_id,)
    ).fetchone()

    assert raised[0] == "open"
    assert raised[1]["first_missing"] == 3
    assert raised[1]["last_missing"] == 4
    assert contiguous[0] == 5


def test_status_clock_behind_raises_clock_drift(stack, db, lane, raw_publisher):
    status = {
        "state": "online",
        "device_id": lane.device_id,
        "outbox_depth": 0,
        "outbox_capacity": 100,
        "outbox_full": False,
        "outbox_rejected": 0,
        "clock": (datetime.now(UTC) - timedelta(minutes=10)).isoformat(),
    }
    raw_publisher(lane).publish(f"kouan/v1/{lane.site_id}/{lane.device_id}/status", json.dumps(status))
    wait_for(lambda: alert(db, "clock_drift", lane.device_id))
    found = alert(db, "clock_drift", lane.device_id)

    assert found[0] == "open"
    assert found[1]["source"] == "status"
    assert 595 <= found[1]["offset_s"] <= 660
