"""An exit lane gets ``manual`` at once while the database is down, recorded once it is back.

This module runs its own broker and database, because it stops PostgreSQL, which
the session's shared stack must not see.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from kouan.db.migrate import migrate
from kouan.devices import ensure_lane, ensure_site, provision
from kouan.stack.manager import (
    Stack,
    _start_postgres,
    _stop_postgres,
    down,
    reload_broker,
    up,
    write_broker_auth,
)
from tests.collector.support import Devices, declare, gate_passage, new_container_number
from tests.conftest import ProcessGroup, RawPublisher, free_port, wait_for

SITE = "OUTAGE"


@pytest.fixture(scope="module")
def private_stack():
    home = Path(tempfile.mkdtemp(prefix="kouan-outage-"))
    stack = Stack(home, mqtt_port=free_port(), pg_port=free_port())
    up(stack)
    migrate(stack.database_url)
    yield stack
    down(stack)
    shutil.rmtree(home, ignore_errors=True)


def test_database_outage_gives_manual_then_records_it(private_stack):
    stack = private_stack
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        ensure_site(conn, SITE, "停机测试场站", "CNSHA", "2248")
        ensure_lane(conn, SITE, "OUT01", "out")
        number = new_container_number()
        declare(conn, SITE, [{"number": number}])
    lane = provision(stack.home, stack.database_url, f"{SITE}-OUT01", SITE, "OUT01", "lane")
    write_broker_auth(stack)
    reload_broker(stack)

    group = ProcessGroup(stack)
    env = {
        "KOUAN_HOME": str(stack.home),
        "KOUAN_MQTT_PORT": str(stack.mqtt_port),
        "KOUAN_STACK_PG_PORT": str(stack.pg_port),
        "KOUAN_DATABASE_URL": stack.database_url,
        "KOUAN_SITE_FILTER": SITE,
    }
    collector = group.start("collector", env=env, log="collector-outage")
    publisher = None
    try:
        wait_for(lambda: b"subscribed in group" in collector.log_path.read_bytes(), timeout=30)
        publisher = RawPublisher(stack, lane.mqtt_username, lane.mqtt_password)
        commands: list[dict] = []
        publisher.client.on_message = lambda client, userdata, message: commands.append(
            json.loads(message.payload)
        )
        publisher.client.subscribe(f"kouan/v1/{SITE}/{lane.device_id}/commands", qos=1)
        devices = Devices(stack.home, stack.database_url, SITE)
        devices.by_lane["OUT01"] = lane

        _stop_postgres(stack)
        topic, raw = devices.event(
            "OUT01", gate_passage([number], lane="OUT01", direction="out", decision=True)
        )
        publisher.publish(topic, raw)
        wait_for(lambda: commands, timeout=15)

        [manual] = commands
        assert manual["decision"] == "manual"
        assert [reason["code"] for reason in manual["reasons"]] == ["database_unavailable"]

        _start_postgres(stack)
        event_id = json.loads(raw)["event_id"]

        def recorded() -> list:
            """the passage and its decision are stored"""
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                return conn.execute(
                    "SELECT command_id::text, decision FROM gate_decisions WHERE event_id = %s", (event_id,)
                ).fetchall()

        rows = wait_for(recorded, timeout=60)
        assert rows == [(manual["command_id"], "manual")]
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM events WHERE event_id = %s", (event_id,)).fetchone()[
                0
            ]
        assert stored == 1
        assert len(commands) == 1
    finally:
        if publisher is not None:
            publisher.close()
        group.stop_all()
