"""The dashboard in headless Chromium, against the real pipeline.

A real edge event (signed, published to the real broker) reaches a real collector,
which stores the visit and raises an ``undeclared_container`` alert. A user made with
``kouan user add`` then logs in to a real API server and works through the page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Browser, add_user
from tests.conftest import passage, signed_event, start_collector, wait_for

CONTAINER = "CSQU3054383"
# The OCR read an O for the 0 in the serial; Kouan stores the repaired number and
# keeps the raw text, which the timeline must show with its source.
RAW_READ = "CSQU3O54383"
SEAL = "CN0123456"
PLATE = "沪A12345"
REASON = "已联系货代补报，现场查看"


@pytest.fixture
def scene(stack, db, site_id, make_device, processes, raw_publisher):
    """An undeclared container through lane IN01, its open alert, and an officer account."""
    lane = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    body = passage(RAW_READ, seals=(SEAL,), plate=PLATE, passage_id="P-0001")
    publisher.publish(topic, signed_event(lane, stack.home, 1, body))

    def alert_raised():
        """collector raised undeclared_container for the container"""
        return db.execute(
            "SELECT alert_id, message_zh, message_en FROM alerts WHERE site_id = %s "
            "AND rule_code = 'undeclared_container' AND container_number = %s",
            (site_id, CONTAINER),
        ).fetchone()

    alert_id, message_zh, message_en = wait_for(alert_raised)
    username = f"officer.{site_id}".lower()
    add_user(username, "customs_officer", site_id)

    def send(seq, body):
        publisher.publish(topic, signed_event(lane, stack.home, seq, body))

    return {
        "send": send,
        "site_id": site_id,
        "device_id": lane.device_id,
        "alert_id": alert_id,
        "message_zh": message_zh,
        "message_en": message_en,
        "username": username,
    }


def test_login_page_chinese_by_default(browser: Browser, scene):
    browser.open_dashboard()
    page = browser.page

    page.get_by_test_id("login").wait_for()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#login h1").inner_text() == "登录口岸监管看板"
    assert page.get_by_test_id("login-submit").inner_text() == "登录"
    assert page.get_by_test_id("lang-toggle").inner_text() == "English"


def test_login_wrong_password_shows_chinese_error(browser: Browser, scene):
    browser.open_dashboard()
    page = browser.page

    page.get_by_test_id("login-username").fill(scene["username"])
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-submit").click()

    error = page.get_by_test_id("login-error")
    error.wait_for()
    assert error.inner_text() == "用户名或密码错误。"
    assert page.get_by_test_id("view-overview").is_hidden()


def test_officer_follows_container_and_acknowledges_alert(browser: Browser, scene, db):
    page = browser.page
    browser.open_dashboard()
    browser.log_in(scene["username"])
    assert page.get_by_test_id("site-select").input_value() == scene["site_id"]

    # Search -> result -> timeline.
    page.get_by_test_id("nav").get_by_text("集装箱查询").click()
    page.get_by_test_id("container-query").fill(CONTAINER.lower())
    page.get_by_test_id("container-search-submit").click()
    result = page.get_by_test_id("container-result").filter(has_text=CONTAINER)
    result.wait_for()
    assert "未申报" in result.inner_text()
    result.click()

    page.wait_for_url(re.compile(rf"#/containers/{CONTAINER}$"))
    expect(page.get_by_test_id("detail-number")).to_have_text(CONTAINER)
    expect(page.get_by_test_id("timeline-entry")).to_have_count(1)
    entry = page.get_by_test_id("timeline-entry").first
    assert "过卡" in entry.inner_text()
    assert "IN01" in entry.inner_text()
    reads = entry.get_by_test_id("reads").inner_text()
    assert RAW_READ in reads
    assert entry.locator("mark.diff").all_inner_texts() == ["O"]
    assert "OCR 识别" in reads
    assert PLATE in reads
    assert "车牌识别" in reads
    assert SEAL in reads

    # Alert desk: acknowledge the alert with a reason.
    page.get_by_test_id("nav").get_by_text("告警处置").click()
    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{scene["alert_id"]}"]')
    row.wait_for()
    assert row.get_by_test_id("alert-message").inner_text() == scene["message_zh"]
    assert "未申报" in row.inner_text()
    row.get_by_test_id("alert-acknowledge").click()
    page.get_by_test_id("reason-text").fill(REASON)
    page.get_by_test_id("reason-submit").click()
    row.wait_for(state="detached")

    status, by, reason = db.execute(
        "SELECT status, acknowledged_by, acknowledge_reason FROM alerts WHERE alert_id = %s",
        (scene["alert_id"],),
    ).fetchone()
    assert status == "acknowledged"
    assert by == scene["username"]
    assert reason == REASON
    audited = db.execute(
        "SELECT actor, reason FROM audit_log WHERE action = 'alert.acknowledge' AND subject = %s",
        (f"alert:{scene['alert_id']}",),
    ).fetchall()
    assert audited == [(scene["username"], REASON)]

    page.get_by_test_id("alert-status").select_option("acknowledged")
    acknowledged = page.locator(f'[data-testid="alert-row"][data-alert-id="{scene["alert_id"]}"]')
    acknowledged.wait_for()
    assert "已确认" in acknowledged.inner_text()
    assert scene["username"] in acknowledged.inner_text()
    assert browser.foreign_requests == []


def test_acknowledge_without_reason_rejected(browser: Browser, scene, db):
    page = browser.page
    browser.open_dashboard("#/alerts")
    browser.log_in(scene["username"])

    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{scene["alert_id"]}"]')
    row.get_by_test_id("alert-acknowledge").click()
    page.get_by_test_id("reason-text").fill("   ")
    page.get_by_test_id("reason-submit").click()

    assert page.locator("#reason-error").inner_text() == "请填写理由。"
    status = db.execute("SELECT status FROM alerts WHERE alert_id = %s", (scene["alert_id"],)).fetchone()[0]
    assert status == "open"


def test_language_switch_changes_texts_and_persists(browser: Browser, scene):
    page = browser.page
    browser.open_dashboard("#/alerts")
    browser.log_in(scene["username"])
    row = page.locator(f'[data-testid="alert-row"][data-alert-id="{scene["alert_id"]}"]')
    row.wait_for()
    nav = page.get_by_test_id("nav")
    assert nav.locator("a").all_inner_texts() == [
        "总览",
        "集装箱查询",
        "报关单完整性",
        "告警处置",
        "设备与卡口",
    ]
    assert row.get_by_test_id("alert-message").inner_text() == scene["message_zh"]

    page.get_by_test_id("lang-toggle").click()
    page.get_by_test_id("lang-toggle").filter(has_text="中文").wait_for()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert nav.locator("a").all_inner_texts() == [
        "Overview",
        "Containers",
        "Declarations",
        "Alert desk",
        "Devices & lanes",
    ]
    message = row.get_by_test_id("alert-message")
    message.filter(has_text=scene["message_en"]).wait_for()
    assert message.inner_text() == scene["message_en"]
    assert "Undeclared container" in row.inner_text()
    assert "Acknowledge" in row.inner_text()

    page.reload()
    page.get_by_test_id("lang-toggle").filter(has_text="中文").wait_for()
    assert page.get_by_test_id("nav").get_by_text("Alert desk").is_visible()
    row.get_by_test_id("alert-message").filter(has_text=scene["message_en"]).wait_for()

    page.get_by_test_id("lang-toggle").click()
    page.get_by_test_id("lang-toggle").filter(has_text="English").wait_for()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    row.get_by_test_id("alert-message").filter(has_text=scene["message_zh"]).wait_for()
    assert row.get_by_test_id("alert-message").inner_text() == scene["message_zh"]


def test_every_view_loads_only_from_own_origin(browser: Browser, scene):
    page = browser.page
    browser.open_dashboard()
    browser.log_in(scene["username"])
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    for view in ("overview", "containers", "declarations", "alerts", "devices"):
        page.get_by_test_id("nav").locator(f'[data-view="{view}"]').click()
        page.locator(f'#main[data-ready="{view}"]').wait_for()
        assert page.locator("#banner").is_hidden(), page.locator("#banner").inner_text()

    font_family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert font_family.startswith('"PingFang SC", "Noto Sans CJK SC"')
    assert page.evaluate("typeof echarts") == "object"
    assert browser.foreign_requests == []
    assert errors == []


def test_overview_follows_live_stream(browser: Browser, scene):
    page = browser.page
    browser.open_dashboard("#/overview")
    browser.log_in(scene["username"])
    page.locator('#main[data-ready="overview"]').wait_for()
    expect(page.get_by_test_id("live")).to_have_text("实时")
    passages = page.get_by_test_id("overview-passages")
    expect(passages).to_contain_text(CONTAINER)
    assert "GYOU4047990" not in passages.inner_text()

    scene["send"](2, passage("GYOU4047990", passage_id="P-0002"))

    # The stream pushes the new visit; the view's own refresh comes only every 15 s.
    expect(passages).to_contain_text("GYOU4047990", timeout=10_000)
