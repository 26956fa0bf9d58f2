"""Fixtures for API tests: the app in-process, callers of every role, and a seeded world.

The world is two sites, A and B, each with a declaration, a container visit, an alert
and a gate decision produced by the real pipeline: signed events from provisioned
devices through Mosquitto into a collector, declarations through the API.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security.accounts import create_api_key
from api.settings import ApiSettings
from kouan import identifiers
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.stack.manager import Stack, reload_broker, write_broker_auth
from tests.conftest import ProcessGroup, RawPublisher, passage, signed_event, start_collector, wait_for

ROLES = ("customs_officer", "supervisor", "integrator", "auditor", "admin")


def random_container(rng: random.Random, owner: str = "KOAU") -> str:
    first10 = f"{owner}{rng.randrange(10**6):06d}"
    return first10 + identifiers.iso6346_check_digit(first10)


def random_declaration(rng: random.Random, direction: str = "import") -> str:
    return f"22482026{'1' if direction == 'import' else '0'}{rng.randrange(10**9):09d}"


@pytest.fixture(scope="session")
def api_settings(stack: Stack) -> ApiSettings:
    # Generous limits: tests exercise rate limiting with their own app.
    return ApiSettings(rate_limit_per_minute=100_000, login_limit_per_minute=1_000)


@pytest.fixture(scope="session")
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def make_key(stack: Stack) -> Callable[..., dict[str, str]]:
    """Return headers carrying a new API key of ``role`` for ``sites``."""
    counter = iter(range(1, 10**6))

    def make(role: str, *sites: str, language: str = "en") -> dict[str, str]:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            key = create_api_key(
                conn, f"test-{role}-{os.getpid()}-{next(counter)}", role, list(sites), actor="test"
            )
        return {"X-API-Key": key, "Accept-Language": language}

    return make


@dataclass
class SiteWorld:
    site_id: str
    container_number: str
    declaration_number: str
    lane_device: str
    exit_device: str
    alert_ids: list[int] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    visit_id: int = 0


@dataclass
class World:
    a: SiteWorld
    b: SiteWorld
    missing_container: str
    missing_declaration: str


def _provision(stack: Stack, site_id: str, lane_id: str) -> DeviceIdentity:
    identity = provision(stack.home, stack.database_url, f"{site_id}-{lane_id}", site_id, lane_id, "lane")
    write_broker_auth(stack)
    reload_broker(stack)
    time.sleep(0.2)  # Mosquitto rereads its password file on SIGHUP asynchronously.
    return identity


def _declare(client: TestClient, headers: dict[str, str], site: SiteWorld) -> None:
    body = {
        "site_id": site.site_id,
        "status": "declared",
        "containers": [
            {"container_number": site.container_number, "seal_numbers": ["SEAL001"], "gross_weight_kg": 20000}
        ],
    }
    response = client.put(f"/api/v1/declarations/{site.declaration_number}", json=body, headers=headers)
    assert response.status_code == 201, response.text


def _drive_site(
    stack: Stack, db: psycopg.Connection, site: SiteWorld, entry: DeviceIdentity, exit_lane: DeviceIdentity
) -> None:
    """Send an entry with the wrong seal and an exit that requests a decision."""
    entry_publisher = RawPublisher(stack, entry.mqtt_username, entry.mqtt_password)
    exit_publisher = RawPublisher(stack, exit_lane.mqtt_username, exit_lane.mqtt_password)
    try:
        entry_publisher.publish(
            f"kouan/v1/{site.site_id}/{entry.device_id}/events",
            signed_event(
                entry,
                stack.home,
                1,
                passage(site.container_number, seals=("SEAL999",), declaration=site.declaration_number),
                occurred_at="2026-12-03T09:30:00+08:00",
            ),
        )
        exit_publisher.publish(
            f"kouan/v1/{site.site_id}/{exit_lane.device_id}/events",
            signed_event(
                exit_lane,
                stack.home,
                1,
                passage(
                    site.container_number,
                    lane="OUT01",
                    direction="out",
                    seals=("SEAL999",),
                    passage_id="P-OUT",
                    decision=True,
                ),
                occurred_at="2026-12-03T10:30:00+08:00",
            ),
        )
    finally:
        entry_publisher.close()
        exit_publisher.close()

    def decided() -> bool:
        """both events, a gate decision and an alert stored"""
        decisions = db.execute(
            "SELECT count(*) FROM gate_decisions WHERE site_id = %s", (site.site_id,)
        ).fetchone()
        alerts = db.execute("SELECT count(*) FROM alerts WHERE site_id = %s", (site.site_id,)).fetchone()
        events = db.execute("SELECT count(*) FROM events WHERE site_id = %s", (site.site_id,)).fetchone()
        return decisions[0] >= 1 and alerts[0] >= 1 and events[0] == 2

    wait_for(decided, timeout=30)
    site.alert_ids = [
        row[0] for row in db.execute("SELECT alert_id FROM alerts WHERE site_id = %s", (site.site_id,))
    ]
    site.command_ids = [
        str(row[0])
        for row in db.execute("SELECT command_id FROM gate_decisions WHERE site_id = %s", (site.site_id,))
    ]
    site.event_ids = [
        str(row[0])
        for row in db.execute(
            "SELECT event_id FROM events WHERE site_id = %s ORDER BY occurred_at", (site.site_id,)
        )
    ]
    site.visit_id = db.execute(
        "SELECT visit_id FROM container_visits WHERE site_id = %s", (site.site_id,)
    ).fetchone()[0]


@pytest.fixture(scope="module")
def world(stack: Stack, client: TestClient, make_key: Callable[..., dict[str, str]]) -> Iterator[World]:
    rng = random.Random()
    suffix = f"{os.getpid()}{rng.randrange(10**6)}"
    sites = []
    with psycopg.connect(stack.database_url, autocommit=True) as db:
        for letter in ("A", "B"):
            site_id = f"W{letter}{suffix}"
            ensure_site(db, site_id, f"测试场站 {site_id}", "CNSHA", "2248")
            for lane, direction in (("IN01", "in"), ("OUT01", "out"), ("SCAN01", "scan")):
                ensure_lane(db, site_id, lane, direction)
            sites.append(
                SiteWorld(
                    site_id=site_id,
                    container_number=random_container(rng),
                    declaration_number=random_declaration(rng),
                    lane_device=f"{site_id}-IN01",
                    exit_device=f"{site_id}-OUT01",
                )
            )

        group = ProcessGroup(stack)
        try:
            integrator = make_key("integrator", *(site.site_id for site in sites))
            for site in sites:
                entry = _provision(stack, site.site_id, "IN01")
                exit_lane = _provision(stack, site.site_id, "OUT01")
                start_collector(group, site.site_id, 1)
                _declare(client, integrator, site)
                _drive_site(stack, db, site, entry, exit_lane)
        finally:
            group.stop_all()

    yield World(
        a=sites[0],
        b=sites[1],
        missing_container=random_container(rng, "ZZZU"),
        missing_declaration=random_declaration(rng),
    )


def error_text(response: Any) -> str:
    return response.text
