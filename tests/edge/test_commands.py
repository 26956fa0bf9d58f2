"""Gate decisions at the lane: acted on once, never after valid_until, never misaddressed.

Commands go through the real broker to a running edge runtime; the barrier's
actions and the ``command.result`` events stored by the collector are counted.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.main import EdgeRuntime
from edge.settings import EdgeSettings
from kouan.settings import CommonSettings
from tests.conftest import start_collector, wait_for
from tests.edge.conftest import free_port, post_frame


class ServicePublisher:
    """Publishes commands as Kouan's service user, as the collector does."""

    def __init__(self, stack) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"commands-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(*CommonSettings().mqtt_credentials())
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()

    def send(self, identity, command: dict) -> None:
        topic = f"kouan/v1/{identity.site_id}/{identity.device_id}/commands"
        self.client.publish(topic, json.dumps(command), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def command(identity, passage_id: str, containers: list[str], *, valid_s: float = 30, **overrides) -> dict:
    now = datetime.now(UTC)
    body = {
        "command_id": str(uuid.uuid4()),
        "kind": "gate.decision",
        "device_id": identity.device_id,
        "lane_id": identity.lane_id,
        "passage_id": passage_id,
        "container_numbers": containers,
        "decision": "release",
        "reasons": [],
        "issued_at": now.isoformat(),
        "valid_until": (now + timedelta(seconds=valid_s)).isoformat(),
    }
    body.update(overrides)
    return body


@pytest.fixture
def lane_runtime(stack, site_id, make_device, processes, tmp_path):
    identity = make_device(site_id, "OUT01")
    start_collector(processes, site_id, 1)
    settings = EdgeSettings(
        device_id=identity.device_id,
        http_port=free_port(),
        lane_direction="out",
        barrier_log=str(tmp_path / "barrier.jsonl"),
    )
    runtime = EdgeRuntime(settings, identity)
    runtime.start()
    assert runtime.agent.wait_until_connected(20)
    yield runtime
    runtime.stop()


@pytest.fixture
def service(stack):
    publisher = ServicePublisher(stack)
    yield publisher
    publisher.close()


def drive_passage(port: int, container: str) -> str:
    post_frame(port, {"type": "arrival"})
    post_frame(port, {"type": "container", "container_number": container, "confidence": 0.97})
    status, body = post_frame(port, {"type": "departure"})
    assert status == 201
    return body["passage_id"]


def command_results(db, device_id: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT envelope->'payload'->>'command_id', envelope->'payload'->>'outcome' FROM events "
        "WHERE device_id = %s AND kind = 'command.result'",
        (device_id,),
    ).fetchall()
    return dict(rows)


def test_commands_barrier_acts_once_on_valid_only(stack, db, lane_runtime, service):
    identity = lane_runtime.identity
    passage_id = drive_passage(lane_runtime.settings.http_port, "CSQU3054383")
    valid = command(identity, passage_id, ["CSQU3054383"])
    expired = command(identity, passage_id, ["CSQU3054383"], valid_s=-1)
    other_lane = command(identity, passage_id, ["CSQU3054383"], lane_id="IN01")
    other_device = command(identity, passage_id, ["CSQU3054383"], device_id=f"{identity.site_id}-IN01")
    other_container = command(identity, passage_id, ["TCNU7200794"])

    for body in (valid, valid, expired, other_lane, other_device, other_container, valid):
        service.send(identity, body)
    # The collector also decides the exit passage and sends its own command, whose
    # result may be stored before or after these. Only this test's commands are
    # waited for and counted.
    sent = {body["command_id"] for body in (valid, expired, other_lane, other_device, other_container)}
    wait_for(lambda: sent <= command_results(db, identity.device_id).keys(), timeout=30)
    results = command_results(db, identity.device_id)
    acted = [str(action.command_id) for action in lane_runtime.barrier.actions]
    assert [command_id for command_id in acted if command_id in sent] == [valid["command_id"]]
    assert results[valid["command_id"]] in {"acted", "duplicate"}
    assert results[expired["command_id"]] == "expired"
    assert results[other_lane["command_id"]] == "misaddressed"
    assert results[other_device["command_id"]] == "misaddressed"
    assert results[other_container["command_id"]] == "misaddressed"

    def valid_outcomes() -> list[tuple[str, int]]:
        return db.execute(
            "SELECT envelope->'payload'->>'outcome', count(*) FROM events WHERE device_id = %s "
            "AND kind = 'command.result' AND envelope->'payload'->>'command_id' = %s GROUP BY 1 ORDER BY 1",
            (identity.device_id, valid["command_id"]),
        ).fetchall()

    # Three deliveries of the valid command: one acted on, two reported as duplicates.
    wait_for(lambda: sum(count for _, count in valid_outcomes()) >= 3, timeout=30)
    assert valid_outcomes() == [("acted", 1), ("duplicate", 2)]
    with open(lane_runtime.settings.barrier_log) as log:
        logged = [json.loads(line)["command_id"] for line in log.read().splitlines()]
    assert [command_id for command_id in logged if command_id in sent] == [valid["command_id"]]


def test_commands_duplicate_after_restart_not_acted(stack, site_id, make_device, service):
    identity = make_device(site_id, "OUT01")
    settings = EdgeSettings(device_id=identity.device_id, lane_direction="out")
    body = command(identity, "P-restart", ["CSQU3054383"])

    first = EdgeRuntime(settings, identity)
    first.start()
    assert first.agent.wait_until_connected(20)
    service.send(identity, body)
    wait_for(lambda: first.barrier.actions, timeout=10)
    first.stop()
    second = EdgeRuntime(settings, identity)
    second.start()
    assert second.agent.wait_until_connected(20)
    service.send(identity, body)
    # seq 1 reported "acted"; seq 2 is the restarted lane's report of the redelivery.
    wait_for(lambda: second.agent.outbox.last_seq() == 2, timeout=10)
    reports = [event.document["payload"]["outcome"] for event in second.agent.outbox.pending(0, 10)]
    second.stop()

    assert reports == ["acted", "duplicate"]
    assert len(first.barrier.actions) == 1
    assert second.barrier.actions == []


def test_invalid_command_rejected_and_reported(stack, db, lane_runtime, service):
    identity = lane_runtime.identity
    service.send(identity, {"command_id": "not-a-uuid", "kind": "gate.decision"})
    wait_for(lambda: command_results(db, identity.device_id), timeout=20)

    assert command_results(db, identity.device_id) == {"not-a-uuid": "invalid"}
    assert lane_runtime.barrier.actions == []
