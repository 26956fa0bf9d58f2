"""A running collector picks up registry changes without a restart."""

from __future__ import annotations

import time

from tests.conftest import passage, quarantine_rows, signed_event, stored_count, wait_for


def test_disabled_device_rejected_after_max_age(stack, db, site_id, make_device, processes, raw_publisher):
    lane = make_device(site_id, "IN01")
    processes.start(
        "collector",
        env={
            "KOUAN_SITE_FILTER": site_id,
            "KOUAN_SHARE_GROUP": f"g-{site_id}",
            "KOUAN_CLIENT_ID": f"collector-{site_id}-registry",
            "KOUAN_REGISTRY_MAX_AGE_S": "1",
        },
        log="collector",
    )
    time.sleep(2.0)  # the collector subscribes and loads the registry
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    publisher.publish(topic, signed_event(lane, stack.home, 1, passage("CSQU3054383", passage_id="P1")))
    wait_for(lambda: stored_count(db, lane.device_id) == 1)

    db.execute("UPDATE devices SET enabled = false WHERE device_id = %s", (lane.device_id,))
    time.sleep(1.5)
    publisher.publish(topic, signed_event(lane, stack.home, 2, passage("TCNU7200794", passage_id="P2")))

    wait_for(lambda: quarantine_rows(db, lane.device_id))
    assert [code for code, _ in quarantine_rows(db, lane.device_id)] == ["device_disabled"]
    assert stored_count(db, lane.device_id) == 1
