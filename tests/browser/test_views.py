"""Alert desk overrides, declaration completeness and device health in the browser.

The scene goes through the real pipeline: a declaration filed through the API with
an integrator key, signed lane and scanner events through the broker and collector,
and the collector's own hold for a container leaving without release.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Browser, add_user, create_api_key
from tests.conftest import passage, signed_event, start_collector, wait_for

DECLARED_ARRIVED = "CSQU3054383"
DECLARED_MISSING = "GYOU4047990"
# Declared with seal CN0777777. The gate reads another seal, then the exit lane requests a decision.
HELD = "TGHU7599330"
OVERRIDE_REASON = "查验无误，报关单已补报，准予放行"


def declaration_number() -> str:
    """A valid 18-digit 海关编号 (district 2248, year 2026, import), random so that other test
    modules sharing the session's database do not draw the same number."""
    return f"224820261{secrets.randbelow(10**9):09d}"


@pytest.fixture
def desk(stack, db, site_id, make_device, processes, raw_publisher, api_server):
    entry, exit_lane, scanner = (
        make_device(site_id, "IN01"),
        make_device(site_id, "OUT01"),
        make_device(site_id, "SCAN01", kind="scanner"),
    )
    start_collector(processes, site_id, 1)

    number = declaration_number()
    key = create_api_key(f"tos-{site_id}".lower(), "integrator", site_id)
    declared = httpx.put(
        f"{api_server}/api/v1/declarations/{number}",
        headers={"X-API-Key": key},
        json={
            "site_id": site_id,
            "consignee_name": "上海远洋进出口有限公司",
            "containers": [
                {
                    "container_number": DECLARED_ARRIVED,
                    "seal_numbers": ["CN0123456"],
                    "gross_weight_kg": 21500,
                },
                {
                    "container_number": DECLARED_MISSING,
                    "seal_numbers": ["CN0654321"],
                    "gross_weight_kg": 18000,
                },
                {"container_number": HELD, "seal_numbers": ["CN0777777"], "gross_weight_kg": 19000},
            ],
        },
        timeout=30,
    )
    assert declared.status_code == 201, declared.text

    def send(identity, seq, body, kind="gate.passage"):
        topic = f"kouan/v1/{site_id}/{identity.device_id}/events"
        raw_publisher(identity).publish(topic, signed_event(identity, stack.home, seq, body, kind=kind))

    send(entry, 1, passage(DECLARED_ARRIVED, seals=("CN0123456",), declaration=number, passage_id="P1"))
    send(
        scanner,
        1,
        {
            "lane_id": "SCAN01",
            "container_number": {"raw": DECLARED_ARRIVED, "source": "ocr", "confidence": 0.98},
            "result": "clear",
            "image_ref": f"h986/{DECLARED_ARRIVED}/0001.jpg",
        },
        kind="scan.result",
    )
    send(entry, 2, passage(HELD, seals=("CN0999999",), declaration=number, passage_id="P2"))
    send(
        exit_lane,
        1,
        passage(
            HELD,
            lane="OUT01",
            direction="out",
            seals=("CN0999999",),
            declaration=number,
            passage_id="X1",
            decision=True,
        ),
    )

    def hold_issued():
        """collector held the container with the wrong seal at OUT01"""
        return db.execute(
            "SELECT command_id FROM gate_decisions "
            "WHERE site_id = %s AND decision = 'hold' AND %s = ANY(container_numbers)",
            (site_id, HELD),
        ).fetchone()

    (hold_id,) = wait_for(hold_issued)

    def scanned():
        """collector recorded the scan of the arrived container"""
        return db.execute(
            "SELECT 1 FROM container_visits "
            "WHERE site_id = %s AND container_number = %s AND scanned_at IS NOT NULL",
            (site_id, DECLARED_ARRIVED),
        ).fetchone()

    wait_for(scanned)
    username = f"officer.{site_id}".lower()
    add_user(username, "customs_officer", site_id)
    return {"site_id": site_id, "declaration_number": number, "hold_id": hold_id, "username": username}


def test_officer_overrides_hold_with_reason(browser: Browser, desk, db):
    page = browser.page
    browser.open_dashboard("#/alerts")
    browser.log_in(desk["username"])

    row = page.locator(f'[data-testid="decision-row"][data-command-id="{desk["hold_id"]}"]')
    expect(row).to_contain_text("扣留")
    expect(row).to_contain_text(HELD)
    row.get_by_test_id("decision-override").click()
    page.get_by_test_id("reason-text").fill(OVERRIDE_REASON)
    page.get_by_test_id("reason-submit").click()
    expect(row).to_contain_text("已改判")

    decision, issued_by, lane = db.execute(
        "SELECT decision, issued_by, lane_id FROM gate_decisions WHERE overrides = %s", (desk["hold_id"],)
    ).fetchone()
    assert decision == "release"
    assert issued_by == desk["username"]
    assert lane == "OUT01"
    audited = db.execute(
        "SELECT actor, reason FROM audit_log WHERE action = 'decision.override' AND site_id = %s",
        (desk["site_id"],),
    ).fetchall()
    assert audited == [(desk["username"], OVERRIDE_REASON)]
    assert browser.foreign_requests == []


def test_declaration_view_shows_completeness(browser: Browser, desk):
    page = browser.page
    browser.open_dashboard(f"#/declarations/{desk['declaration_number']}")
    browser.log_in(desk["username"])

    completeness = page.get_by_test_id("declaration-completeness")
    expect(completeness).to_contain_text("2/3 箱已到港，1 箱已出卡，1 箱未到港")
    rows = page.locator("#declaration-containers tbody tr")
    expect(rows).to_have_count(3)
    arrived = rows.filter(has_text=DECLARED_ARRIVED)
    missing = rows.filter(has_text=DECLARED_MISSING)
    assert "已机检" in arrived.inner_text()
    assert "CN0123456" in arrived.inner_text()
    assert "未到港" in missing.inner_text()
    assert "已出卡" in rows.filter(has_text=HELD).inner_text()

    page.get_by_test_id("lang-toggle").click()
    expect(completeness).to_contain_text("2/3 containers arrived, 1 exited, 1 not arrived")


def test_timeline_shows_scanner_image_reference(browser: Browser, desk):
    page = browser.page
    browser.open_dashboard(f"#/containers/{DECLARED_ARRIVED}")
    browser.log_in(desk["username"])

    entries = page.get_by_test_id("timeline-entry")
    expect(entries).to_have_count(2)
    scan = page.locator('[data-testid="timeline-entry"][data-kind="scan.result"]')
    expect(scan).to_contain_text("机检结果")
    expect(scan).to_contain_text("SCAN01")
    assert scan.get_by_test_id("image-ref").inner_text().strip() == f"h986/{DECLARED_ARRIVED}/0001.jpg"
    assert "OCR 识别" in scan.get_by_test_id("reads").inner_text()


def test_devices_view_lists_lane_devices(browser: Browser, desk):
    page = browser.page
    browser.open_dashboard("#/devices")
    browser.log_in(desk["username"])

    rows = page.get_by_test_id("device-row")
    expect(rows).to_have_count(3)
    entry = page.locator(f'[data-testid="device-row"][data-device-id="{desk["site_id"]}-IN01"]')
    expect(entry).to_contain_text("卡口设备")
    expect(entry).to_contain_text("IN01")
    scanner = page.locator(f'[data-testid="device-row"][data-device-id="{desk["site_id"]}-SCAN01"]')
    expect(scanner).to_contain_text("机检设备")
    lanes = page.get_by_test_id("lane-table").locator("tbody tr")
    expect(lanes).to_have_count(3)
    expect(lanes.filter(has_text="OUT01")).to_contain_text("出口卡口")


def test_supervisor_cannot_override_hold(browser: Browser, desk):
    username = f"supervisor.{desk['site_id']}".lower()
    add_user(username, "supervisor", desk["site_id"])
    page = browser.page
    browser.open_dashboard("#/alerts")
    browser.log_in(username)
    page.locator('#main[data-ready="alerts"]').wait_for()

    row = page.locator(f'[data-testid="decision-row"][data-command-id="{desk["hold_id"]}"]')
    expect(row).to_contain_text("扣留")
    assert row.get_by_test_id("decision-override").count() == 0
    assert page.get_by_test_id("alert-acknowledge").count() > 0


def test_auditor_reads_alerts_without_actions(browser: Browser, desk):
    username = f"auditor.{desk['site_id']}".lower()
    add_user(username, "auditor", desk["site_id"])
    page = browser.page
    browser.open_dashboard("#/alerts")
    browser.log_in(username)
    page.locator('#main[data-ready="alerts"]').wait_for()

    expect(page.get_by_test_id("alert-row").first).to_be_visible()
    assert page.get_by_test_id("alert-acknowledge").count() == 0
    assert page.get_by_test_id("alert-resolve").count() == 0
    assert page.get_by_test_id("decision-override").count() == 0
    assert "操作" not in page.get_by_test_id("alert-table").locator("thead").inner_text()
