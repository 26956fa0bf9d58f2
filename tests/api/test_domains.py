"""Each API domain against the real pipeline: timeline, alerts, decisions, declarations,
devices, statistics, the event feed, the live stream, the audit log and metrics."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from api.security.tokens import split_api_key
from kouan.settings import CommonSettings


def test_timeline_lists_reads_with_provenance(client, world, make_key):
    headers = make_key("customs_officer", world.a.site_id)

    response = client.get(f"/api/v1/containers/{world.a.container_number}/timeline", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["container_number"] == world.a.container_number
    assert [item["event_id"] for item in body["items"]] == world.a.event_ids
    first_read = body["items"][0]["reads"]["containers"][0]
    assert first_read["raw"] == world.a.container_number
    assert first_read["source"] == "ocr"
    assert first_read["confidence"] == 0.91
    assert body["items"][0]["payload"]["containers"][0]["seals"][0]["raw"] == "SEAL999"
    visit_alerts = [alert for alert in body["alerts"] if alert["visit_id"] == world.a.visit_id]
    assert visit_alerts, "the visit's alerts are listed"
    assert {alert["alert_id"] for alert in body["alerts"]} <= set(world.a.alert_ids)
    assert all(alert["evidence"] for alert in visit_alerts)
    assert body["next_cursor"] is None


def test_timeline_pages_with_cursor(client, world, make_key):
    headers = make_key("customs_officer", world.a.site_id)
    url = f"/api/v1/containers/{world.a.container_number}/timeline"

    first = client.get(url, params={"limit": 1}, headers=headers).json()
    second = client.get(url, params={"limit": 1, "cursor": first["next_cursor"]}, headers=headers).json()

    assert [item["event_id"] for item in first["items"]] == world.a.event_ids[:1]
    assert [item["event_id"] for item in second["items"]] == world.a.event_ids[1:2]
    assert second["next_cursor"] is None


def test_container_search_filters_by_lane_and_flag(client, world, make_key):
    headers = make_key("supervisor", world.a.site_id, world.b.site_id)

    response = client.get(
        "/api/v1/containers", params={"site": world.a.site_id, "lane": "IN01"}, headers=headers
    )

    assert response.status_code == 200, response.text
    numbers = [item["container_number"] for item in response.json()["items"]]
    assert numbers == [world.a.container_number]
    flags = response.json()["items"][0]["flags"]
    flagged = (
        client.get(
            "/api/v1/containers", params={"site": world.a.site_id, "flag": flags[0]}, headers=headers
        ).json()["items"]
        if flags
        else []
    )
    assert all(flags[0] in item["flags"] for item in flagged)
    none = client.get(
        "/api/v1/containers", params={"site": world.a.site_id, "lane": "SCAN01"}, headers=headers
    )
    assert none.json()["items"] == []


def test_alert_acknowledge_then_resolve_is_audited(client, world, make_key, db):
    headers = make_key("customs_officer", world.b.site_id)
    alert_id = world.b.alert_ids[0]

    acknowledged = client.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", json={"reason": "正在核查施封号"}, headers=headers
    )
    resolved = client.post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"reason": "已重新施封"}, headers=headers
    )
    again = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"reason": "again"}, headers=headers)

    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged"
    assert acknowledged.json()["acknowledge_reason"] == "正在核查施封号"
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"].startswith("apikey:")
    assert again.status_code == 409
    assert again.json()["code"] == "alert_already_resolved"
    actions = db.execute(
        "SELECT action, reason FROM audit_log WHERE subject = %s ORDER BY audit_id", (f"alert:{alert_id}",)
    ).fetchall()
    assert actions == [("alert.acknowledge", "正在核查施封号"), ("alert.resolve", "已重新施封")]


def test_alert_action_without_reason_rejected(client, world, make_key):
    headers = make_key("supervisor", world.a.site_id)

    response = client.post(
        f"/api/v1/alerts/{world.a.alert_ids[0]}/acknowledge", json={"reason": "  "}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_override_publishes_release_to_lane(client, world, make_key, db, stack):
    command_id = world.a.command_ids[0]
    decision = db.execute(
        "SELECT decision, device_id FROM gate_decisions WHERE command_id = %s", (command_id,)
    ).fetchone()
    assert decision[0] in ("hold", "manual")
    received: list[dict] = []
    subscribed = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="override-listener", protocol=mqtt.MQTTv5)
    listener.username_pw_set(*CommonSettings().mqtt_credentials())
    listener.on_connect = lambda c, *_: c.subscribe(
        f"kouan/v1/{world.a.site_id}/{decision[1]}/commands", qos=1
    )
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda c, u, message: received.append(json.loads(message.payload))
    listener.connect("127.0.0.1", stack.mqtt_port)
    listener.loop_start()
    try:
        assert subscribed.wait(10)
        headers = make_key("customs_officer", world.a.site_id)

        response = client.post(
            f"/api/v1/decisions/{command_id}/override", json={"reason": "现场查验无误"}, headers=headers
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["decision"] == "release"
        assert body["overrides"] == command_id
        assert body["published"] is True
        from tests.conftest import wait_for

        wait_for(lambda: any(item["command_id"] == body["command_id"] for item in received), timeout=10)
    finally:
        listener.disconnect()
        listener.loop_stop()
    command = next(item for item in received if item["command_id"] == body["command_id"])
    assert command["decision"] == "release"
    assert command["lane_id"] == "OUT01"
    history = client.get(
        "/api/v1/decisions", params={"site": world.a.site_id, "lane": "OUT01"}, headers=headers
    )
    held = next(item for item in history.json()["items"] if item["command_id"] == command_id)
    assert held["overridden_by"] == body["command_id"]
    audit_row = db.execute(
        "SELECT actor, reason FROM audit_log WHERE action = 'decision.override' AND subject = %s",
        (f"decision:{command_id}",),
    ).fetchone()
    assert audit_row[1] == "现场查验无误"
    repeat = client.post(
        f"/api/v1/decisions/{command_id}/override", json={"reason": "again"}, headers=headers
    )
    assert repeat.status_code == 409
    assert repeat.json()["code"] == "decision_already_overridden"


def _publish(stack, identity, publisher, seq, payload, occurred_at, kind="gate.passage"):
    from tests.conftest import signed_event

    topic = f"kouan/v1/{identity.site_id}/{identity.device_id}/events"
    publisher.publish(
        topic, signed_event(identity, stack.home, seq, payload, kind=kind, occurred_at=occurred_at)
    )


def test_statistics_bucket_days_in_port_time_zone(
    client, stack, db, site_id, make_device, collector, raw_publisher, make_key
):
    from tests.conftest import passage, stored_count, wait_for

    lane = make_device(site_id, "IN01")
    publisher = raw_publisher(lane)
    # 07:00 in Shanghai on 4 December is 23:00 UTC on 3 December.
    _publish(stack, lane, publisher, 1, passage("CSQU3054383", passage_id="P1"), "2026-12-03T09:00:00+08:00")
    _publish(stack, lane, publisher, 2, passage("ZEPU0037255", passage_id="P2"), "2026-12-04T07:00:00+08:00")
    wait_for(lambda: stored_count(db, lane.device_id) == 2)
    headers = make_key("supervisor", site_id)
    window = {"site": site_id, "since": "2026-12-01T00:00:00+08:00", "until": "2026-12-06T00:00:00+08:00"}

    days = client.get("/api/v1/statistics", params={**window, "bucket": "day"}, headers=headers)
    hours = client.get("/api/v1/statistics", params={**window, "bucket": "hour"}, headers=headers)

    assert days.status_code == 200, days.text
    assert days.json()["timezone"] == "Asia/Shanghai"
    # Alerts raised today add rows without passages.
    passages = {item["bucket_start"]: item["passages"] for item in days.json()["items"] if item["passages"]}
    assert passages == {"2026-12-03T00:00:00+08:00": 1, "2026-12-04T00:00:00+08:00": 1}
    hourly = {item["bucket_start"]: item["passages"] for item in hours.json()["items"] if item["passages"]}
    assert hourly == {"2026-12-03T09:00:00+08:00": 1, "2026-12-04T07:00:00+08:00": 1}


def test_statistics_range_bounded(client, world, make_key):
    headers = make_key("supervisor", world.a.site_id, language="zh-CN")

    response = client.get(
        "/api/v1/statistics",
        params={
            "site": world.a.site_id,
            "bucket": "hour",
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-03-01T00:00:00Z",
        },
        headers=headers,
    )

    assert response.status_code == 422
    assert response.json()["code"] == "time_range_too_long"
    assert "31" in response.json()["message"]


def test_event_feed_resumes_from_cursor(client, world, make_key):
    headers = make_key("integrator", world.a.site_id)

    first = client.get("/api/v1/events", params={"site": world.a.site_id, "limit": 1}, headers=headers).json()
    second = client.get(
        "/api/v1/events",
        params={"site": world.a.site_id, "limit": 1, "cursor": first["next_cursor"]},
        headers=headers,
    ).json()
    end = client.get(
        "/api/v1/events",
        params={"site": world.a.site_id, "limit": 1, "cursor": second["next_cursor"]},
        headers=headers,
    ).json()

    served = first["items"] + second["items"]
    assert sorted(item["event_id"] for item in served) == sorted(world.a.event_ids)
    assert served[0]["stored_at"] <= served[1]["stored_at"]
    assert first["items"][0]["container_numbers"] == [world.a.container_number]
    assert end["items"] == []
    assert end["next_cursor"] == second["next_cursor"]


def test_event_feed_rejects_foreign_cursor(client, world, make_key):
    headers = make_key("supervisor", world.a.site_id)
    alerts = client.get("/api/v1/alerts", params={"limit": 1}, headers=headers).json()

    response = client.get(
        "/api/v1/events", params={"cursor": alerts["next_cursor"] or "bm90LWEtY3Vyc29y"}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


def test_stream_sends_alert_change(client, world, make_key, stack):
    from collector.correlation.actions import acknowledge_alert

    headers = make_key("supervisor", world.a.site_id)
    alert_id = world.a.alert_ids[0]
    events: list[tuple[str, dict]] = []

    failures: list[Exception] = []

    def acknowledge() -> None:
        try:
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                acknowledge_alert(conn, alert_id, "stream-test", "watching the stream")
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            failures.append(exc)

    with client.stream(
        "GET", "/api/v1/stream", params={"site": world.a.site_id, "max_seconds": 4}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name == "ready":
                    threading.Thread(target=acknowledge).start()

    names = [name for name, _ in events]
    assert failures == []
    assert names[0] == "ready"
    assert names[-1] == "end"
    changed = [data for name, data in events if name == "alert" and data["alert_id"] == alert_id]
    assert changed, names
    assert changed[-1]["status"] == "acknowledged"
    assert changed[-1]["acknowledged_by"] == "stream-test"


def test_audit_log_lists_declaration_writes_and_verifies(client, world, make_key):
    headers = make_key("auditor", world.b.site_id)

    records = client.get("/api/v1/audit", params={"action": "declaration.put"}, headers=headers)
    verify = client.get("/api/v1/audit/verify", headers=headers)

    assert records.status_code == 200, records.text
    subjects = [item["subject"] for item in records.json()["items"]]
    assert f"declaration:{world.b.declaration_number}" in subjects
    assert f"declaration:{world.a.declaration_number}" not in subjects
    assert all(item["actor"].startswith("apikey:") for item in records.json()["items"])
    assert verify.json()["intact"] is True
    assert verify.json()["records"] >= len(subjects)


def test_metrics_report_alerts_decisions_and_latency(client, world, make_key):
    key = make_key("supervisor", world.a.site_id)["X-API-Key"]
    client.get("/api/v1/lanes", headers={"X-API-Key": key})

    response = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text
    text = response.text
    assert any(
        line.startswith("kouan_alerts_unresolved{") and world.a.site_id in line for line in text.splitlines()
    )
    assert any(
        line.startswith("kouan_decisions_last_hour{") and world.a.site_id in line
        for line in text.splitlines()
    )
    assert "kouan_api_request_duration_seconds_bucket{" in text
    assert 'method="GET",route="/api/v1/lanes",status="200"' in text


def test_declaration_status_follows_lifecycle(client, world, make_key, db):
    integrator = make_key("integrator", world.a.site_id)
    officer = make_key("customs_officer", world.a.site_id)
    number = "224820261" + str(abs(hash(world.a.site_id)) % 10**9).zfill(9)
    body = {"site_id": world.a.site_id, "containers": [{"container_number": "CSQU3054383"}]}

    created = client.put(f"/api/v1/declarations/{number}", json=body, headers=integrator)
    repeated = client.put(f"/api/v1/declarations/{number}", json=body, headers=integrator)
    held = client.post(
        f"/api/v1/declarations/{number}/status", json={"status": "held", "reason": "布控"}, headers=officer
    )
    released = client.post(
        f"/api/v1/declarations/{number}/status",
        json={"status": "released", "reason": "查验无误"},
        headers=officer,
    )
    cancelled = client.post(
        f"/api/v1/declarations/{number}/status",
        json={"status": "cancelled", "reason": "撤单"},
        headers=officer,
    )
    revived = client.post(
        f"/api/v1/declarations/{number}/status", json={"status": "declared", "reason": "x"}, headers=officer
    )

    assert created.status_code == 201, created.text
    assert repeated.status_code == 200
    assert repeated.json()["version"] == created.json()["version"]
    assert held.json()["status"] == "held"
    assert released.json()["status"] == "released"
    assert cancelled.json()["status"] == "cancelled"
    assert revived.status_code == 409
    assert revived.json()["code"] == "invalid_status_transition"
    actions = db.execute(
        "SELECT action, reason FROM audit_log WHERE subject = %s ORDER BY audit_id",
        (f"declaration:{number}",),
    ).fetchall()
    assert actions == [
        ("declaration.put", None),
        ("declaration.status", "布控"),
        ("declaration.status", "查验无误"),
        ("declaration.status", "撤单"),
    ]


def test_declaration_completeness_counts(client, world, make_key):
    headers = make_key("customs_officer", world.a.site_id)

    response = client.get(f"/api/v1/declarations/{world.a.declaration_number}", headers=headers)

    assert response.status_code == 200
    counts = response.json()["counts"]
    assert counts["containers"] == 1
    assert counts["arrived"] == 1
    assert counts["missing"] == 0


def test_device_status_reports_outbox_and_health(
    client, stack, db, site_id, make_device, collector, raw_publisher, make_key
):
    from tests.conftest import wait_for

    lane = make_device(site_id, "IN01")
    publisher = raw_publisher(lane)
    status = {"state": "online", "device_id": lane.device_id, "outbox_depth": 7, "outbox_capacity": 100000}
    publisher.publish(f"kouan/v1/{site_id}/{lane.device_id}/status", json.dumps(status))
    wait_for(
        lambda: db.execute("SELECT status FROM devices WHERE device_id = %s", (lane.device_id,)).fetchone()[0]
    )
    headers = make_key("supervisor", site_id)

    devices = client.get("/api/v1/devices", params={"site": site_id}, headers=headers)
    lanes = client.get("/api/v1/lanes", params={"site": site_id}, headers=headers)

    device = next(item for item in devices.json()["items"] if item["device_id"] == lane.device_id)
    assert device["outbox_depth"] == 7
    assert device["outbox_capacity"] == 100000
    assert device["online"] is True
    assert device["health"] == "ok"
    in01 = next(item for item in lanes.json()["items"] if item["lane_id"] == "IN01")
    assert in01["mode"] == "automatic"
    assert in01["devices"] == 1
    assert in01["devices_ok"] == 1


def test_correction_of_unreadable_number_resolves_alert(
    client, stack, db, site_id, make_device, collector, raw_publisher, make_key
):
    from tests.conftest import passage, wait_for

    lane = make_device(site_id, "IN01")
    publisher = raw_publisher(lane)
    _publish(stack, lane, publisher, 1, passage("CSQU3054384"), "2026-12-03T09:30:00+08:00")

    def unreadable():
        """container_number_unreadable alert raised"""
        return db.execute(
            "SELECT alert_id, subject_id FROM alerts "
            "WHERE site_id = %s AND rule_code = 'container_number_unreadable'",
            (site_id,),
        ).fetchone()

    alert_id, event_id = wait_for(unreadable)
    headers = make_key("customs_officer", site_id)

    response = client.post(
        f"/api/v1/events/{event_id}/corrections",
        json={
            "site_id": site_id,
            "field": "container_number",
            "corrected": "CSQU3054383",
            "reason": "核对箱体喷码",
        },
        headers=headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["event_id"] == event_id
    alert = client.get(f"/api/v1/alerts/{alert_id}", headers=headers).json()
    assert alert["status"] == "resolved"
    audit_row = db.execute(
        "SELECT action, reason FROM audit_log WHERE subject = %s", (f"event:{event_id}",)
    ).fetchone()
    assert audit_row == ("read.correct", "核对箱体喷码")
    container = client.get("/api/v1/containers/CSQU3054383", params={"site": site_id}, headers=headers)
    assert container.status_code == 200


def test_stream_limit_returns_503_then_frees(api_settings, world, make_key):
    from fastapi.testclient import TestClient

    from api.main import create_app

    settings = api_settings.model_copy(update={"stream_max_clients": 1})
    headers = make_key("supervisor", world.a.site_id)
    params = {"site": world.a.site_id, "max_seconds": 2}
    with TestClient(create_app(settings)) as limited:
        with limited.stream("GET", "/api/v1/stream", params=params, headers=headers) as first:
            busy = limited.get("/api/v1/stream", params={**params, "max_seconds": 1}, headers=headers)
            assert first.status_code == 200
            list(first.iter_lines())
        with limited.stream(
            "GET", "/api/v1/stream", params={**params, "max_seconds": 1}, headers=headers
        ) as later:
            later_status = later.status_code

    assert busy.status_code == 503
    assert busy.json()["code"] == "too_many_streams"
    assert busy.headers["Retry-After"] == "60"
    assert later_status == 200


def test_container_status_shows_latest_visit_and_declaration(client, world, make_key, db):
    headers = make_key("customs_officer", world.a.site_id)
    response = client.get(f"/api/v1/containers/{world.a.container_number}", headers=headers)

    assert response.status_code == 200
    body = response.json()
    where = "WHERE container_number = %s AND site_id = %s"
    key = (world.a.container_number, world.a.site_id)
    (visit_id,) = db.execute(
        f"SELECT visit_id FROM container_visits {where} ORDER BY first_seen_at DESC LIMIT 1", key
    ).fetchone()
    (visits,) = db.execute(f"SELECT count(*) FROM container_visits {where}", key).fetchone()
    status, direction = db.execute(
        "SELECT status, direction FROM declarations WHERE declaration_number = %s",
        (world.a.declaration_number,),
    ).fetchone()
    assert body["container_number"] == world.a.container_number
    assert body["current"]["visit_id"] == visit_id
    assert body["current"]["site_id"] == world.a.site_id
    assert body["previous_visits"] == visits - 1
    assert body["declaration"] == {
        "declaration_number": world.a.declaration_number,
        "status": status,
        "direction": direction,
    }
    key_id, _ = split_api_key(headers["X-API-Key"])
    (used,) = db.execute("SELECT last_used_at FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()
    assert used is not None
