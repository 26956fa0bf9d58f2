"""Fixtures that run every test against a real Mosquitto and a real TimescaleDB.

One private stack (broker and PostgreSQL cluster on free ports, under a temporary
KOUAN_HOME) is started per test session, so tests may stop or kill the broker
without touching anything else on the machine.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kouan.db.migrate import migrate
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.settings import CommonSettings
from kouan.stack.manager import Stack, down, reload_broker, up, write_broker_auth

_counter = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until predicate returns a truthy value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate.__doc__ or predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    home = Path(tempfile.mkdtemp(prefix="kouan-test-"))
    instance = Stack(home, mqtt_port=free_port(), pg_port=free_port())
    up(instance)
    migrate(instance.database_url)
    env = {
        "KOUAN_HOME": str(home),
        "KOUAN_MQTT_PORT": str(instance.mqtt_port),
        "KOUAN_STACK_PG_PORT": str(instance.pg_port),
        "KOUAN_DATABASE_URL": instance.database_url,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield instance
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    down(instance)
    if request.session.testsfailed:
        print(f"\nTest stack logs kept in {home / 'log'}")
    else:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack: Stack) -> CommonSettings:
    return CommonSettings()


@pytest.fixture
def db(stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def site_id(db: psycopg.Connection) -> str:
    """A fresh site per test, so tests never see each other's events."""
    site = f"T{os.getpid()}-{next(_counter)}"
    ensure_site(db, site, f"测试场站 {site}", "CNSHA", "2248")
    for lane, direction in (("IN01", "in"), ("OUT01", "out"), ("SCAN01", "scan")):
        ensure_lane(db, site, lane, direction)
    return site


@pytest.fixture
def make_device(stack: Stack, settings: CommonSettings) -> Callable[..., DeviceIdentity]:
    def make(site_id: str, lane_id: str = "IN01", kind: str = "lane") -> DeviceIdentity:
        identity = provision(stack.home, stack.database_url, f"{site_id}-{lane_id}", site_id, lane_id, kind)
        write_broker_auth(stack)
        reload_broker(stack)
        time.sleep(0.2)  # Mosquitto rereads its password file on SIGHUP asynchronously.
        return identity

    return make


class ProcessGroup:
    """Kouan processes started by a test, stopped (or killed) at teardown."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, env: dict[str, str] | None = None, log: str = "process"
    ) -> subprocess.Popen[bytes]:
        log_path = self.stack.home / "log" / f"{log}-{next(_counter)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "kouan", *args],
            env={**os.environ, "KOUAN_LOG_LEVEL": "INFO", **(env or {})},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = log_path  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(stack: Stack) -> Iterator[ProcessGroup]:
    group = ProcessGroup(stack)
    yield group
    group.stop_all()


@pytest.fixture
def collector(processes: ProcessGroup, site_id: str) -> subprocess.Popen[bytes]:
    """One collector process consuming this test's site only, subscribed when returned."""
    return start_collector(processes, site_id, 1)


def start_collector(processes: ProcessGroup, site_id: str, instance: int) -> subprocess.Popen[bytes]:
    process = processes.start(
        "collector",
        env={
            "KOUAN_SITE_FILTER": site_id,
            "KOUAN_SHARE_GROUP": f"g-{site_id}",
            "KOUAN_CLIENT_ID": f"collector-{site_id}-{instance}",
        },
        log="collector",
    )

    def subscribed() -> bool:
        """collector log shows its subscription"""
        return b"subscribed in group" in process.log_path.read_bytes()  # type: ignore[attr-defined]

    wait_for(subscribed, timeout=30)
    return process


class RawPublisher:
    """An MQTT client that publishes bytes as a given broker user, bypassing the edge agent."""

    def __init__(self, stack: Stack, username: str, password: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{username}-{next(_counter)}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raw_publisher(stack: Stack) -> Iterator[Callable[[DeviceIdentity], RawPublisher]]:
    made: list[RawPublisher] = []

    def make(identity: DeviceIdentity) -> RawPublisher:
        publisher = RawPublisher(stack, identity.mqtt_username, identity.mqtt_password)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


def stored_count(db: psycopg.Connection, device_id: str) -> int:
    return int(db.execute("SELECT count(*) FROM events WHERE device_id = %s", (device_id,)).fetchone()[0])


def quarantine_rows(db: psycopg.Connection, device_id: str) -> list[tuple[str, str]]:
    return db.execute(
        "SELECT reason_code, reason FROM quarantine WHERE client_device = %s ORDER BY quarantine_id",
        (device_id,),
    ).fetchall()


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def signed_event(
    identity: DeviceIdentity,
    home: Path,
    seq: int,
    payload: dict[str, Any],
    kind: str = "gate.passage",
    occurred_at: str = "2026-12-03T09:30:00+08:00",
    **overrides: Any,
) -> bytes:
    """Build and sign an envelope exactly as an edge agent would."""
    import uuid

    from kouan.signing import load_private_key, sign

    document: dict[str, Any] = {
        "contract_version": 1,
        "event_id": str(uuid.uuid4()),
        "device_id": identity.device_id,
        "site_id": identity.site_id,
        "seq": seq,
        "kind": kind,
        "occurred_at": occurred_at,
        "recorded_at": occurred_at,
        "sent_at": occurred_at,
        "payload": payload,
        **overrides,
    }
    document["signature"] = sign(document, load_private_key(identity.key_path(home)))
    return dumps(document)


def passage(
    container_raw: str,
    *,
    lane: str = "IN01",
    direction: str = "in",
    seals: tuple[str, ...] = (),
    plate: str | None = None,
    declaration: str | None = None,
    passage_id: str = "P1",
    weight_kg: float | None = None,
    decision: bool = False,
) -> dict[str, Any]:
    """A gate.passage payload with one container read by OCR."""
    body: dict[str, Any] = {
        "passage_id": passage_id,
        "lane_id": lane,
        "direction": direction,
        "containers": [
            {
                "container_number": {"raw": container_raw, "source": "ocr", "confidence": 0.91},
                "seals": [{"raw": seal, "source": "ocr"} for seal in seals],
            }
        ],
        "decision_requested": decision,
    }
    if plate is not None:
        body["tractor_plate"] = {"raw": plate, "source": "lpr", "confidence": 0.95}
    if declaration is not None:
        body["declaration_number"] = declaration
    if weight_kg is not None:
        body["gross_weight"] = {"kg": weight_kg}
    return body
