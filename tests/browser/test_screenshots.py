"""Screenshots of every dashboard view over a few hours of port traffic.

The PNGs go to the directory in KOUAN_SCREENSHOT_DIR when it is set (docs/screenshots
for the documentation) and to the test's temporary directory otherwise. The test
fails when a view shows an error banner or a script error, or when a request leaves
the API's origin.

    KOUAN_SCREENSHOT_DIR=docs/screenshots .venv/bin/pytest tests/browser/test_screenshots.py
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from kouan.devices import ensure_lane
from simulators import reference
from tests.browser.conftest import Browser, add_user, create_api_key
from tests.browser.test_views import declaration_number
from tests.conftest import passage, signed_event, start_collector, wait_for

SHANGHAI = timezone(timedelta(hours=8))
OCR_REPAIRED = "CSQU3054383"
OCR_RAW = "CSQU3O54383"  # the OCR read an O for the 0 in the serial


class Lane:
    """One provisioned lane device and its next seq."""

    def __init__(self, identity, publisher, stack_home: Path) -> None:
        self.identity = identity
        self.publisher = publisher
        self.stack_home = stack_home
        self.seq = 0

    def send(self, body: dict, at: datetime, kind: str = "gate.passage") -> None:
        self.seq += 1
        topic = f"kouan/v1/{self.identity.site_id}/{self.identity.device_id}/events"
        # Sent now, so the devices' clock offsets stay small although the passages are backdated.
        sent_at = datetime.now(SHANGHAI).isoformat()
        event = signed_event(
            self.identity,
            self.stack_home,
            self.seq,
            body,
            kind=kind,
            occurred_at=at.isoformat(),
            sent_at=sent_at,
        )
        self.publisher.publish(topic, event)

    def report_status(self) -> None:
        status = {
            "state": "online",
            "device_id": self.identity.device_id,
            "outbox_depth": 0,
            "outbox_capacity": 100_000,
            "outbox_full": False,
            "last_seq": self.seq,
            "clock": datetime.now(UTC).isoformat(),
            "firmware": "kouan-edge 0.1.0",
        }
        topic = f"kouan/v1/{self.identity.site_id}/{self.identity.device_id}/status"
        self.publisher.publish(topic, json.dumps(status))


@pytest.fixture
def port_hours(stack, db, site_id, make_device, processes, raw_publisher, api_server):
    """About ten hours of gate traffic at one site, ending now."""
    ensure_lane(db, site_id, "IN02", "in")
    lanes = {}
    for lane_id, kind in (("IN01", "lane"), ("IN02", "lane"), ("OUT01", "lane"), ("SCAN01", "scanner")):
        identity = make_device(site_id, lane_id, kind=kind)
        lanes[lane_id] = Lane(identity, raw_publisher(identity), stack.home)
    start_collector(processes, site_id, 1)

    rng = random.Random(20261204)
    now = datetime.now(SHANGHAI).replace(microsecond=0)
    number = declaration_number()
    declared = [reference.container_number(rng) for _ in range(4)]
    key = create_api_key(f"tos-{site_id}".lower(), "integrator", site_id)
    response = httpx.put(
        f"{api_server}/api/v1/declarations/{number}",
        headers={"X-API-Key": key},
        json={
            "site_id": site_id,
            "consignee_name": "上海远洋进出口有限公司",
            "containers": [
                {"container_number": value, "seal_numbers": [f"CN{index:07d}"], "gross_weight_kg": 21_000}
                for index, value in enumerate(declared, start=1)
            ],
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text

    sent = 0
    for index, value in enumerate(declared[:3], start=1):
        at = now - timedelta(minutes=30 * index)
        lanes["IN01"].send(
            passage(
                value,
                seals=(f"CN{index:07d}",),
                declaration=number,
                passage_id=f"D{index}",
                plate=f"沪D{rng.randint(10000, 99999)}",
            ),
            at,
        )
        lanes["SCAN01"].send(
            {
                "lane_id": "SCAN01",
                "container_number": {"raw": value, "source": "ocr", "confidence": 0.97},
                "result": "clear",
                "image_ref": f"h986/{value}/{at:%Y%m%d%H%M}.jpg",
            },
            at + timedelta(minutes=10),
            kind="scan.result",
        )
        sent += 2
    for index in range(36):
        value = reference.container_number(rng)
        at = now - timedelta(minutes=rng.randint(10, 600))
        lane_id = rng.choice(("IN01", "IN02"))
        lanes[lane_id].send(
            passage(
                value,
                lane=lane_id,
                passage_id=f"P{index}",
                seals=(f"CN{rng.randint(10**6, 10**7 - 1)}",),
                plate=f"沪A{rng.randint(10000, 99999)}",
            ),
            at,
        )
        sent += 1
        if index % 4 == 0:
            lanes["OUT01"].send(
                passage(value, lane="OUT01", direction="out", passage_id=f"X{index}", decision=True),
                at + timedelta(minutes=45),
            )
            sent += 1
    lanes["IN02"].send(
        passage(OCR_RAW, lane="IN02", seals=("CN0123456",), plate="沪A12345", passage_id="P-OCR"),
        now - timedelta(minutes=4),
    )
    lanes["SCAN01"].send(
        {
            "lane_id": "SCAN01",
            "container_number": {"raw": OCR_REPAIRED, "source": "ocr", "confidence": 0.96},
            "result": "clear",
            "image_ref": f"h986/{OCR_REPAIRED}/{now:%Y%m%d%H%M}.jpg",
        },
        now - timedelta(minutes=2),
        kind="scan.result",
    )
    sent += 2
    for lane in lanes.values():
        lane.report_status()

    def stored():
        """collector stored every event of the scene"""
        count = db.execute("SELECT count(*) FROM events WHERE site_id = %s", (site_id,)).fetchone()[0]
        return count == sent

    wait_for(stored, timeout=60)
    username = f"wang.{site_id}".lower()
    add_user(username, "customs_officer", site_id)
    return {"username": username, "declaration_number": number}


def screenshot_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("KOUAN_SCREENSHOT_DIR")
    directory = Path(configured) if configured else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_every_view_screenshot_in_both_languages(browser: Browser, port_hours, tmp_path):
    page = browser.page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    directory = screenshot_dir(tmp_path)
    views = {
        "overview": "#/overview",
        "containers": f"#/containers/{OCR_REPAIRED}",
        "declarations": f"#/declarations/{port_hours['declaration_number']}",
        "alerts": "#/alerts",
        "devices": "#/devices",
    }

    browser.open_dashboard()
    page.get_by_test_id("login-username").fill(port_hours["username"])
    page.screenshot(path=directory / "dashboard-login-zh.png")
    browser.log_in(port_hours["username"])

    screenshots = []
    for language in ("zh", "en"):
        if language == "en":
            page.get_by_test_id("lang-toggle").click()
            expect(page.get_by_test_id("lang-toggle")).to_have_text("中文")
        for view, fragment in views.items():
            page.goto(f"{browser.base_url}/dashboard/{fragment}")
            page.locator(f'#main[data-ready="{view}"]').wait_for()
            page.wait_for_timeout(300)  # ECharts draws on the next animation frame.
            assert page.locator("#banner").is_hidden(), f"{view}: {page.locator('#banner').inner_text()}"
            path = directory / f"dashboard-{view}-{language}.png"
            page.screenshot(path=path, full_page=view in ("containers", "declarations"))
            screenshots.append(path)

    expected = [f"dashboard-{view}-{language}.png" for language in ("zh", "en") for view in views]
    assert [path.name for path in screenshots] == expected
    for path in screenshots:
        assert path.stat().st_size > 20_000, path
    assert errors == []
    assert browser.foreign_requests == []
