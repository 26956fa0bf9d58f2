"""Each API domain against the real pipeline: timeline, alerts, decisions, declarations,
devices, statistics, the event feed, the live stream, the audit log and metrics."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

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
    assert {alert["alert_id"] for alert in body["alerts"]} >= {
        alert_id for alert_id in world.a.alert_ids if alert_id in {a["alert_id"] for a in body["alerts"]}
    }
    assert body["alerts"], "the visit's alerts are listed"
    assert all(alert["evidence"] is not None for alert in body["alerts"])
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
