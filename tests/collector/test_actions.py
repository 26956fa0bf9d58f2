"""Human actions on alerts, decisions and reads: validation, effects and the audit chain."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from collector.correlation.actions import (
    INTERNAL_DEVICE_ID,
    ActionNotFound,
    InvalidAction,
    acknowledge_alert,
    correct_read,
    override_decision,
    resolve_alert,
)
from kouan.audit import verify
from tests.collector.support import (
    Devices,
    Store,
    at,
    decisions,
    declare,
    event_id_of,
    gate_passage,
    new_container_number,
    open_alerts,
    visit_rules,
)

SEAL = "SL20261204"


@pytest.fixture
def devices(stack, site_id):
    return Devices(stack.home, stack.database_url, site_id)


@pytest.fixture
def store(stack, db):
    return Store(db, stack.database_url)


@pytest.fixture
def container(db, site_id):
    number = new_container_number()
    declare(db, site_id, [{"number": number, "seals": [SEAL], "weight": 20_000.0}])
    return number


@pytest.fixture
def seal_alert(db, site_id, devices, store, container):
    """The alert id of a seal mismatch on the container's visit."""
    store.write(devices.event("IN01", gate_passage([container], seals=("SL999",)), occurred_at=at(0)))
    [alert] = open_alerts(db, site_id, container)
    return alert["alert_id"]


def audit_records(db, subject):
    return db.execute(
        "SELECT actor, action, reason, details FROM audit_log WHERE subject = %s ORDER BY audit_id",
        (subject,),
    ).fetchall()


def test_acknowledge_alert_records_user_and_audit(db, seal_alert):
    acknowledge_alert(db, seal_alert, "officer.li", "checking the seal at the yard")

    status, by, reason = db.execute(
        "SELECT status, acknowledged_by, acknowledge_reason FROM alerts WHERE alert_id = %s", (seal_alert,)
    ).fetchone()
    assert status == "acknowledged"
    assert by == "officer.li"
    assert reason == "checking the seal at the yard"
    [(actor, action, audited_reason, details)] = audit_records(db, f"alert:{seal_alert}")
    assert actor == "officer.li"
    assert action == "alert.acknowledge"
    assert audited_reason == "checking the seal at the yard"
    assert details["rule_code"] == "seal_mismatch"


def test_acknowledge_twice_rejected(db, seal_alert):
    acknowledge_alert(db, seal_alert, "officer.li", "looking")

    with pytest.raises(InvalidAction) as caught:
        acknowledge_alert(db, seal_alert, "officer.li", "again")
    assert caught.value.code == "alert_not_open"
    assert "告警" in caught.value.message_zh
    assert isinstance(caught.value, ValueError)


def test_action_without_reason_rejected(db, seal_alert):
    with pytest.raises(InvalidAction) as caught:
        resolve_alert(db, seal_alert, "officer.li", "  ")
    assert caught.value.code == "reason_required"
    assert audit_records(db, f"alert:{seal_alert}") == []


def test_unknown_alert_raises_lookup_error(db):
    with pytest.raises(ActionNotFound) as caught:
        acknowledge_alert(db, 999_999_999, "officer.li", "why")
    assert caught.value.code == "alert_not_found"
    assert isinstance(caught.value, LookupError)


def test_resolved_alert_not_reopened_by_same_evidence(db, site_id, devices, store, container, seal_alert):
    resolve_alert(db, seal_alert, "officer.li", "seal verified by hand, reader misread")
    store.write(
        devices.event(
            "SCAN01",
            {"lane_id": "SCAN01", "container_number": {"raw": container, "source": "ocr"}, "result": "clear"},
            "scan.result",
            at(10),
        )
    )

    assert visit_rules(db, site_id, container) == []
    with pytest.raises(InvalidAction) as caught:
        resolve_alert(db, seal_alert, "officer.li", "again")
    assert caught.value.code == "alert_already_resolved"


def test_resolved_alert_reopened_by_new_evidence(db, site_id, devices, store, container, seal_alert):
    resolve_alert(db, seal_alert, "officer.li", "seal verified by hand")
    store.write(devices.event("IN01", gate_passage([container], seals=("SL555",)), occurred_at=at(5)))

    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "seal_mismatch"
    assert alert["alert_id"] != seal_alert


def test_override_hold_records_release(db, site_id, devices, store, container):
    store.write(devices.event("IN01", gate_passage([container], seals=("SL999",)), occurred_at=at(0)))
    result = store.write(
        devices.event(
            "OUT01",
            gate_passage([container], lane="OUT01", direction="out", seals=("SL999",), decision=True),
            occurred_at=at(60),
        )
    )
    [(_, hold)] = result.commands
    assert hold.decision == "hold"

    command = override_decision(
        db, hold.command_id, "officer.wang", "seal replaced under supervision, see report 17"
    )

    assert command.decision == "release"
    assert command.device_id == hold.device_id
    assert command.container_numbers == [container]
    rows = decisions(db, site_id)
    assert [row["decision"] for row in rows] == ["hold", "release"]
    assert rows[1]["overrides"] == hold.command_id
    assert rows[1]["issued_by"] == "officer.wang"
    [(actor, action, reason, details)] = audit_records(db, f"decision:{hold.command_id}")
    assert (actor, action) == ("officer.wang", "decision.override")
    assert details["new_command_id"] == str(command.command_id)

    with pytest.raises(InvalidAction) as caught:
        override_decision(db, hold.command_id, "officer.wang", "twice")
    assert caught.value.code == "decision_already_overridden"


def test_override_release_rejected(db, site_id, devices, store, container):
    result = store.write(
        devices.event(
            "OUT01",
            gate_passage([container], lane="OUT01", direction="out", seals=(SEAL,), decision=True),
            occurred_at=at(60),
        )
    )
    [(_, release)] = result.commands

    with pytest.raises(InvalidAction) as caught:
        override_decision(db, release.command_id, "officer.wang", "no reason to")
    assert caught.value.code == "decision_not_overridable"


def test_override_unknown_decision_not_found(db):
    with pytest.raises(ActionNotFound) as caught:
        override_decision(db, "00000000-0000-0000-0000-000000000000", "officer.wang", "why")
    assert caught.value.code == "decision_not_found"


def test_correct_unreadable_container_number(db, site_id, devices, store, container):
    topic, raw = devices.event(
        "IN01", gate_passage(["KOUU" + container[4:10] + "X"], seals=(SEAL,)), occurred_at=at(0)
    )
    store.write((topic, raw))
    original = event_id_of(raw)
    assert [item["rule_code"] for item in open_alerts(db, site_id)] == ["container_number_unreadable"]

    correction = correct_read(
        db, site_id, original, "container_number", container, "officer.zhao", "read the plate on the door"
    )

    stored = db.execute(
        "SELECT device_id, kind, envelope->'payload'->>'corrects_event_id' FROM events WHERE event_id = %s",
        (correction,),
    ).fetchone()
    assert stored == (INTERNAL_DEVICE_ID, "read.correction", original)
    assert db.execute("SELECT count(*) FROM events WHERE event_id = %s", (original,)).fetchone()[0] == 1
    status, entry_lane = db.execute(
        "SELECT status, entry_lane FROM container_visits WHERE site_id = %s AND container_number = %s",
        (site_id, container),
    ).fetchone()
    assert (status, entry_lane) == ("entered", "IN01")
    assert open_alerts(db, site_id) == []
    [(actor, action, reason, details)] = audit_records(db, f"event:{original}")
    assert (actor, action) == ("officer.zhao", "read.correct")
    assert details["corrected"] == container


def test_correct_misread_container_moves_visit(db, site_id, devices, store, container):
    wrong = new_container_number()
    topic, raw = devices.event("IN01", gate_passage([wrong], seals=(SEAL,)), occurred_at=at(0))
    store.write((topic, raw))
    assert visit_rules(db, site_id, wrong) == ["undeclared_container"]

    correct_read(db, site_id, event_id_of(raw), "container_number", container, "officer.zhao", "OCR misread")

    assert visit_rules(db, site_id, wrong) == []
    assert visit_rules(db, site_id, container) == []
    statuses = dict(
        db.execute(
            "SELECT container_number, status FROM container_visits WHERE site_id = %s", (site_id,)
        ).fetchall()
    )
    assert statuses == {wrong: "void", container: "entered"}


def test_correct_seal_clears_mismatch(db, site_id, devices, store, container):
    topic, raw = devices.event("IN01", gate_passage([container], seals=("SL2O261204",)), occurred_at=at(0))
    store.write((topic, raw))
    assert visit_rules(db, site_id, container) == ["seal_mismatch"]

    correct_read(db, site_id, event_id_of(raw), "seal_number", SEAL, "officer.zhao", "O read for 0")

    assert visit_rules(db, site_id, container) == []
    seals = db.execute(
        "SELECT seal_numbers FROM container_visits WHERE site_id = %s AND container_number = %s",
        (site_id, container),
    ).fetchone()[0]
    assert seals == [SEAL]


def test_correct_read_rejects_invalid_value(db, site_id, devices, store, container):
    topic, raw = devices.event("IN01", gate_passage([container], seals=(SEAL,)), occurred_at=at(0))
    store.write((topic, raw))

    with pytest.raises(InvalidAction) as caught:
        correct_read(db, site_id, event_id_of(raw), "container_number", "CSQU3054384", "officer.zhao", "typo")
    assert caught.value.code == "corrected_value_invalid"

    with pytest.raises(ActionNotFound) as missing:
        correct_read(
            db, site_id, "7d1f3a50-0000-4000-8000-000000000000", "seal_number", SEAL, "officer.zhao", "x"
        )
    assert missing.value.code == "event_not_found"


def _run_verify(stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kouan", "audit", "verify"],
        env={**os.environ, "KOUAN_DATABASE_URL": stack.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_audit_verify_detects_changed_reason(db, stack, seal_alert):
    acknowledge_alert(db, seal_alert, "officer.li", "original reason")
    (audit_id,) = db.execute(
        "SELECT audit_id FROM audit_log WHERE subject = %s", (f"alert:{seal_alert}",)
    ).fetchone()
    assert verify(db).intact
    intact = _run_verify(stack)
    assert intact.returncode == 0, intact.stderr

    try:
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET reason = 'changed afterwards' WHERE audit_id = %s", (audit_id,))
        db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")

        broken = _run_verify(stack)
        assert broken.returncode == 1
        assert broken.stdout.strip() == str(audit_id)
        assert f"record {audit_id}" in broken.stderr
    finally:
        # Put the record back so later tests in the session see an intact chain.
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET reason = 'original reason' WHERE audit_id = %s", (audit_id,))
        db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    assert verify(db).intact


def test_audit_log_rejects_update(db, seal_alert):
    import psycopg

    acknowledge_alert(db, seal_alert, "officer.li", "reason")

    with pytest.raises(psycopg.errors.RaiseException):
        db.execute("UPDATE audit_log SET reason = 'x' WHERE subject = %s", (f"alert:{seal_alert}",))
    with pytest.raises(psycopg.errors.RaiseException):
        db.execute("TRUNCATE audit_log")
