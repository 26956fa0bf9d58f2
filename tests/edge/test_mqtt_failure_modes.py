"""Known MQTT client failure modes, each replayed against Kouan's edge agent and collector.

- paho-mqtt (Python) #24: after a long outage the client reports connected but
  sends nothing once its in-flight counter is full.
- paho-mqtt (Python) #492 / PR #698: on reconnect the client flushes its whole
  queue, ignoring max_inflight, and may send a message twice under two packet ids.
- paho-mqtt (Python) #400 and #377: QoS 1 duplicates with deep queues, and an
  outgoing queue keyed by packet id, capped near 65,535 messages.
- paho-mqtt (Python) #883: a subscriber killed between acknowledgement and commit
  loses the message (here: the collector, see test_delivery).
- paho.mqtt.c #429: session state lost (clean session, or a broker without the
  session) makes queued messages vanish after reconnect.
- aiomqtt #268/#269: reconnect logic that works after "connection refused" breaks
  after a connect that timed out.
- thin-edge.io #570: messages the broker delivers right after CONNACK are lost.

Faults are injected at the real boundary: a loopback TCP proxy between the agent
and Mosquitto that stalls or refuses connections, the broker's own session table,
and processes killed with SIGKILL.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.agent import EdgeAgent
from edge.main import EdgeRuntime
from edge.outbox import OutboxFull
from edge.settings import EdgeSettings
from tests.conftest import start_collector, stored_count, wait_for
from tests.edge.conftest import container_number
from tests.edge.proxy import FaultProxy
from tests.edge.test_commands import ServicePublisher, command
from tests.edge.test_delivery import duplicate_rows, stored_seqs


def scan(number: int) -> dict:
    return {
        "lane_id": "IN01",
        "container_number": {"raw": container_number(number), "source": "ocr"},
        "result": "clear",
    }


@pytest.fixture
def proxy(stack):
    instance = FaultProxy(stack.mqtt_port)
    yield instance
    instance.close()


@pytest.fixture
def lane(site_id, make_device, processes):
    identity = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    return identity


@pytest.fixture
def make_agent(proxy):
    agents: list[EdgeAgent] = []

    def make(identity, outbox_path: Path | None = None, **settings) -> EdgeAgent:
        agent = EdgeAgent(
            identity,
            EdgeSettings(device_id=identity.device_id, mqtt_port=proxy.port, **settings),
            outbox_path,
        )
        agents.append(agent)
        agent.start()
        return agent

    yield make
    for agent in agents:
        if agent._thread.is_alive():
            agent.stop()


_numbers = itertools.count(1)


def emit_scans(agent: EdgeAgent, count: int) -> list[int]:
    return [
        agent.emit("scan.result", scan(next(_numbers)), occurred_at=datetime.now(UTC)) for _ in range(count)
    ]


@pytest.mark.parametrize("window", [1, 20])
def test_stalled_link_detected_and_reconnected(db, lane, proxy, make_agent, window, caplog):
    """paho #24: connected, publish accepted, nothing delivered; Kouan reconnects and loses nothing."""
    agent = make_agent(lane, inflight_window=window, stall_timeout_s=3, keepalive_s=120)
    assert agent.wait_until_connected(20)
    emit_scans(agent, 10)
    wait_for(lambda: stored_count(db, lane.device_id) == 10)

    proxy.freeze_open()
    with caplog.at_level(logging.WARNING, logger="edge.agent"):
        emit_scans(agent, 30)
        wait_for(lambda: agent.stats.stalls >= 1, timeout=20)
        wait_for(lambda: stored_count(db, lane.device_id) == 40, timeout=30)
    assert agent.wait_until_drained(10)

    assert agent.stats.stalls == 1
    assert agent.stats.connects == 2
    assert stored_seqs(db, lane.device_id) == list(range(1, 41))
    assert duplicate_rows(db, lane.device_id) == 0
    assert any("no receipt for" in record.getMessage() for record in caplog.records)


def test_replay_after_outage_bounded_and_stored_once(db, lane, proxy, make_agent):
    """paho #492: 2,000 events buffered in an outage replay within the window, each stored once."""
    agent = make_agent(lane, inflight_window=20, stall_timeout_s=60, keepalive_s=5)
    assert agent.wait_until_connected(20)
    proxy.mode = "refuse"
    proxy.freeze_open()
    emit_scans(agent, 2000)
    published_before = agent.stats.published

    peak = {"inflight": 0, "paho": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            link = agent._link
            peak["inflight"] = max(peak["inflight"], len(agent._inflight))
            if link is not None:
                peak["paho"] = max(peak["paho"], len(link.client._out_messages))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proxy.mode = "forward"
    wait_for(lambda: stored_count(db, lane.device_id) == 2000, timeout=90)
    assert agent.wait_until_drained(20)
    done.set()
    sampler.join()

    distinct = db.execute(
        "SELECT count(DISTINCT event_id) FROM events WHERE device_id = %s", (lane.device_id,)
    ).fetchone()[0]
    assert distinct == 2000
    assert stored_count(db, lane.device_id) == 2000
    assert duplicate_rows(db, lane.device_id) == 0
    assert peak["inflight"] <= 20
    assert peak["paho"] <= 20 + 1  # the window, and the status message paho also tracks
    assert agent.stats.published - published_before <= 2000 + 20


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_outbox_holds_more_than_packet_id_space(db, lane, proxy, make_agent):
    """paho #377: 65,540 events pending at once (above 65,535 packet ids) all arrive."""
    pending = 65_540
    with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
        # tmpfs makes the 65,540 fsynced commits take seconds instead of minutes;
        # the outbox code and SQLite settings are the ones used on disk.
        proxy.mode = "refuse"
        agent = make_agent(lane, Path(directory) / "outbox.sqlite3", outbox_capacity=pending)
        emit_scans(agent, pending)
        with pytest.raises(OutboxFull):
            agent.emit("scan.result", scan(0), occurred_at=datetime.now(UTC))
        depth_before = agent.outbox.depth()
        proxy.mode = "forward"
        wait_for(lambda: stored_count(db, lane.device_id) == pending, timeout=600, interval=1)
        assert agent.wait_until_drained(60)
        agent.stop()

    assert depth_before == pending
    assert agent.stats.rejected_full == 1
    assert stored_count(db, lane.device_id) == pending
    assert duplicate_rows(db, lane.device_id) == 0


def wipe_session(stack, identity) -> bool:
    """Take over the device's client id with clean start and no expiry: the broker drops its session."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"kouan-edge-{identity.device_id}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    client.connect("127.0.0.1", stack.mqtt_port, clean_start=True, properties=properties)
    client.loop_start()
    connected = wait_for(lambda: client.is_connected(), timeout=10)
    client.disconnect()
    client.loop_stop()
    return bool(connected)


def test_lost_session_resubscribes_and_resends(stack, db, site_id, make_device, processes, proxy, make_agent):
    """paho.mqtt.c #429: the broker lost the session; nothing unreceipted is lost and commands flow again."""
    identity = make_device(site_id, "OUT01")
    start_collector(processes, site_id, 1)
    agent = make_agent(identity, stall_timeout_s=60, keepalive_s=5)
    received: list[dict] = []
    agent.on_command = received.append
    assert agent.wait_until_connected(20)
    emit_scans(agent, 5)
    wait_for(lambda: stored_count(db, identity.device_id) == 5)

    proxy.mode = "refuse"
    proxy.freeze_open()
    emit_scans(agent, 15)
    assert wipe_session(stack, identity)
    wait_for(lambda: agent.stats.connects == 1 and not agent.connected, timeout=30)
    proxy.mode = "forward"
    wait_for(lambda: agent.stats.connects == 2 and agent.connected, timeout=30)
    wait_for(lambda: stored_count(db, identity.device_id) == 20, timeout=30)
    service = ServicePublisher(stack)
    body = command(identity, "P1", ["CSQU3054383"])
    service.send(identity, body)
    wait_for(lambda: received, timeout=10)
    service.close()

    assert agent.stats.sessions_lost == 1
    assert stored_seqs(db, identity.device_id) == list(range(1, 21))
    assert duplicate_rows(db, identity.device_id) == 0
    assert [item["command_id"] for item in received] == [body["command_id"]]


@pytest.mark.parametrize("failure", ["refuse", "stall"])
def test_reconnects_after_refused_or_timed_out_connect(db, lane, proxy, make_agent, failure):
    """aiomqtt #268/#269: recovery must not depend on how the connection failed."""
    agent = make_agent(lane, keepalive_s=5, stall_timeout_s=60)
    assert agent.wait_until_connected(20)
    emit_scans(agent, 5)
    wait_for(lambda: stored_count(db, lane.device_id) == 5)

    proxy.mode = failure
    proxy.freeze_open()
    emit_scans(agent, 10)
    outage_started = proxy.connections
    time.sleep(20)
    attempts = proxy.connections - outage_started
    proxy.mode = "forward"
    wait_for(lambda: stored_count(db, lane.device_id) == 15, timeout=40)

    assert 1 <= attempts <= 10
    assert stored_seqs(db, lane.device_id) == list(range(1, 16))
    assert duplicate_rows(db, lane.device_id) == 0


def test_commands_queued_while_offline_acted_after_reconnect(stack, db, site_id, make_device, tmp_path):
    """thin-edge.io #570: the backlog the broker sends right after CONNACK reaches the lane."""
    identity = make_device(site_id, "OUT01")
    settings = EdgeSettings(device_id=identity.device_id, lane_direction="out")
    first = EdgeRuntime(settings, identity)
    first.start()
    assert first.agent.wait_until_connected(20)
    first.stop()

    service = ServicePublisher(stack)
    bodies = [command(identity, f"P{number}", ["CSQU3054383"], valid_s=300) for number in range(20)]
    for body in bodies:
        service.send(identity, body)
    service.close()
    second = EdgeRuntime(settings, identity)
    second.start()
    wait_for(lambda: len(second.barrier.actions) == 20, timeout=20)
    time.sleep(1)
    second.stop()

    assert [str(action.command_id) for action in second.barrier.actions] == [
        body["command_id"] for body in bodies
    ]
