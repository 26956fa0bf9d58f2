"""A decision waits for events about its own containers that arrived just before it."""

from __future__ import annotations

import json
import time

from tests.collector.support import declare, eseal, gate_passage, new_container_number
from tests.conftest import signed_event, wait_for

SEAL = "ES20261203"


def test_tamper_report_queued_before_exit_holds(stack, db, site_id, make_device, processes, raw_publisher):
    number = new_container_number()
    declare(db, site_id, [{"number": number, "seals": [SEAL], "weight": 20_000.0}])
    exit_lane = make_device(site_id, "OUT01")
    reader = make_device(site_id, "ESEAL01", kind="eseal_reader")
    # A long batch wait keeps the tamper report in the ingest inbox while the exit
    # passage takes the decision path.
    processes.start(
        "collector",
        env={
            "KOUAN_SITE_FILTER": site_id,
            "KOUAN_SHARE_GROUP": f"g-{site_id}",
            "KOUAN_CLIENT_ID": f"collector-{site_id}-order",
            "KOUAN_BATCH_WAIT_MS": "1500",
        },
        log="collector",
    )
    lane = raw_publisher(exit_lane)
    commands: list[dict] = []
    lane.client.on_message = lambda client, userdata, message: commands.append(json.loads(message.payload))
    lane.client.subscribe(f"kouan/v1/{site_id}/{exit_lane.device_id}/commands", qos=1)
    wait_for(
        lambda: db.execute("SELECT count(*) FROM devices WHERE site_id = %s", (site_id,)).fetchone()[0] == 2
    )
    time.sleep(2.0)  # the collector subscribes and loads the registry

    tamper = signed_event(
        reader,
        stack.home,
        1,
        eseal(number, SEAL, opened=True, tampered=True),
        kind="seal.status",
        occurred_at="2026-12-03T09:40:00+08:00",
    )
    leave = signed_event(
        exit_lane,
        stack.home,
        1,
        gate_passage([number], lane="OUT01", direction="out", decision=True, seals=(SEAL,)),
        occurred_at="2026-12-03T09:41:00+08:00",
    )
    raw_publisher(reader).publish(f"kouan/v1/{site_id}/{reader.device_id}/events", tamper)
    lane.publish(f"kouan/v1/{site_id}/{exit_lane.device_id}/events", leave)

    wait_for(lambda: commands, timeout=30)
    assert commands[0]["decision"] == "hold"
    assert "eseal_abnormal" in [reason["code"] for reason in commands[0]["reasons"]]
    stored = db.execute("SELECT count(*) FROM events WHERE site_id = %s", (site_id,)).fetchone()[0]
    assert stored == 2
