"""Device identity end to end: signatures, registry, broker authentication and ACLs.

Every forged, altered or misaddressed message is published to the real broker
and must leave zero rows in ``events``: either the broker refuses it, or the
collector quarantines it with its reason and raises a security alert.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kouan.devices import DeviceIdentity
from kouan.signing import generate_private_key, save_private_key, sign
from kouan.stack.manager import reload_broker, write_broker_auth
from tests.conftest import passage, quarantine_rows, signed_event, start_collector, stored_count, wait_for


@pytest.fixture
def lane(site_id, make_device, processes):
    identity = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    return identity


def events_topic(identity) -> str:
    return f"kouan/v1/{identity.site_id}/{identity.device_id}/events"


def device_alerts(db, device_id: str) -> dict[str, tuple[str, int]]:
    rows = db.execute(
        "SELECT rule_code, severity, occurrences FROM alerts "
        "WHERE subject_kind = 'device' AND subject_id = %s",
        (device_id,),
    ).fetchall()
    return {rule: (severity, occurrences) for rule, severity, occurrences in rows}


def test_forged_signature_quarantined_with_alert(stack, db, lane, raw_publisher):
    document = json.loads(signed_event(lane, stack.home, 1, passage("CSQU3054383")))
    document["signature"] = sign(document, generate_private_key())
    raw_publisher(lane).publish(events_topic(lane), json.dumps(document))

    wait_for(lambda: quarantine_rows(db, lane.device_id))
    assert stored_count(db, lane.device_id) == 0
    assert [code for code, _ in quarantine_rows(db, lane.device_id)] == ["bad_signature"]
    assert device_alerts(db, lane.device_id)["signature_invalid"] == ("critical", 1)


def test_flipped_payload_byte_quarantined_with_alert(stack, db, lane, raw_publisher):
    signed = signed_event(lane, stack.home, 1, passage("CSQU3054383", weight_kg=24000))
    altered = signed.replace(b"24000", b"14000", 1)
    raw_publisher(lane).publish(events_topic(lane), altered)

    wait_for(lambda: quarantine_rows(db, lane.device_id))
    assert altered != signed
    assert stored_count(db, lane.device_id) == 0
    assert [code for code, _ in quarantine_rows(db, lane.device_id)] == ["bad_signature"]
    assert "signature_invalid" in device_alerts(db, lane.device_id)


def test_replayed_seq_with_other_content_raises_tamper(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    publisher.publish(events_topic(lane), signed_event(lane, stack.home, 1, passage("CSQU3054383")))
    wait_for(lambda: stored_count(db, lane.device_id) == 1)
    publisher.publish(events_topic(lane), signed_event(lane, stack.home, 1, passage("TCNU7200794")))

    wait_for(lambda: quarantine_rows(db, lane.device_id))
    assert stored_count(db, lane.device_id) == 1
    stored = db.execute(
        "SELECT container_numbers FROM events WHERE device_id = %s", (lane.device_id,)
    ).fetchone()
    assert stored[0] == ["CSQU3054383"]
    assert [code for code, _ in quarantine_rows(db, lane.device_id)] == ["tampered"]
    assert device_alerts(db, lane.device_id)["event_tampered"] == ("critical", 1)


def test_unregistered_device_quarantined_with_alert(stack, db, lane, raw_publisher):
    # Broker credentials exist (as after a registry entry was removed) but the
    # registry holds no public key for the device.
    identity = DeviceIdentity(
        f"{lane.site_id}-ROGUE", lane.site_id, "IN01", "lane", f"{lane.site_id}-ROGUE", "pw-rogue-1"
    )
    save_private_key(generate_private_key(), identity.key_path(stack.home))
    broker_file = stack.home / "secrets" / "devices" / f"{identity.device_id}.broker"
    broker_file.write_text(f"{identity.mqtt_username}:{identity.mqtt_password}:{identity.site_id}\n")
    write_broker_auth(stack)
    reload_broker(stack)
    time.sleep(0.3)
    raw_publisher(identity).publish(
        events_topic(identity), signed_event(identity, stack.home, 1, passage("CSQU3054383"))
    )

    wait_for(lambda: quarantine_rows(db, identity.device_id))
    assert stored_count(db, identity.device_id) == 0
    assert [code for code, _ in quarantine_rows(db, identity.device_id)] == ["unknown_device"]
    assert device_alerts(db, identity.device_id)["device_unknown"] == ("critical", 1)
    broker_file.unlink()
    write_broker_auth(stack)
    reload_broker(stack)


def test_device_id_not_matching_client_quarantined(stack, db, lane, site_id, make_device, raw_publisher):
    other = make_device(site_id, "OUT01")
    claimed = signed_event(other, stack.home, 1, passage("CSQU3054383", lane="OUT01", direction="out"))
    raw_publisher(lane).publish(events_topic(lane), claimed)

    wait_for(lambda: quarantine_rows(db, lane.device_id))
    assert stored_count(db, lane.device_id) == 0
    assert stored_count(db, other.device_id) == 0
    assert [code for code, _ in quarantine_rows(db, lane.device_id)] == ["device_mismatch"]
    assert "device_mismatch" in device_alerts(db, lane.device_id)


def connect_result(stack, username: str | None, password: str | None) -> str:
    """Connect and return the CONNACK reason (or the socket error) as text."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties):  # noqa: ANN001
        outcome.append(str(reason_code))
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    answered.wait(10)
    client.disconnect()
    client.loop_stop()
    return outcome[0] if outcome else "no answer"


def test_anonymous_client_refused(stack, lane):
    assert connect_result(stack, None, None) == "Not authorized"


def test_wrong_password_refused(stack, lane):
    assert connect_result(stack, lane.mqtt_username, "not-the-password") in {
        "Not authorized",
        "Bad user name or password",
    }


def test_device_cannot_publish_to_other_device_topic(stack, db, lane, site_id, make_device, raw_publisher):
    other = make_device(site_id, "OUT01")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="acl-probe", protocol=mqtt.MQTTv5)
    client.username_pw_set(lane.mqtt_username, lane.mqtt_password)
    acks: list[str] = []
    acked = threading.Event()

    def on_publish(client, userdata, mid, reason_code, properties):  # noqa: ANN001
        acks.append(str(reason_code))
        acked.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    client.publish(events_topic(other), signed_event(other, stack.home, 1, passage("CSQU3054383")), qos=1)
    acked.wait(10)
    client.disconnect()
    client.loop_stop()
    # A message that did reach the collector would be stored within a second.
    raw_publisher(other).publish(
        events_topic(other), signed_event(other, stack.home, 2, passage("TCNU7200794"))
    )
    wait_for(lambda: stored_count(db, other.device_id) == 1)

    assert acks == ["Not authorized"]
    stored = db.execute("SELECT seq FROM events WHERE device_id = %s", (other.device_id,)).fetchall()
    assert stored == [(2,)]
    assert quarantine_rows(db, other.device_id) == []
