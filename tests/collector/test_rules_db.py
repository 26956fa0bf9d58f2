"""Every correlation rule and gate decision against the real database, boundaries included.

Events go through the collector's real inspection and ``write_batch`` in one
transaction each, as the collector's writer does, without the broker in between.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.correlation.rules import RuleSettings
from collector.correlation.shell import reevaluate_containers
from tests.collector.support import (
    Devices,
    Store,
    at,
    decisions,
    declare,
    eseal,
    event_id_of,
    gate_passage,
    new_container_number,
    open_alerts,
    reason_codes,
    scan,
    set_status,
    visit_rules,
)

SEAL = "SL20261203"


@pytest.fixture
def devices(stack, site_id):
    return Devices(stack.home, stack.database_url, site_id)


@pytest.fixture
def store(stack, db):
    return Store(db, stack.database_url)


@pytest.fixture
def container(db, site_id):
    """A container declared and released with one seal and 20,000 kg."""
    number = new_container_number()
    declare(db, site_id, [{"number": number, "seals": [SEAL], "weight": 20_000.0}])
    return number


def enter(devices, number, minutes=0, **values):
    values.setdefault("seals", (SEAL,))
    return devices.event("IN01", gate_passage([number], **values), occurred_at=at(minutes))


def leave(devices, number, minutes=60, **values):
    values.setdefault("seals", (SEAL,))
    return devices.event(
        "OUT01",
        gate_passage([number], lane="OUT01", direction="out", decision=True, **values),
        occurred_at=at(minutes),
    )


def test_clean_visit_released_without_alerts(db, site_id, devices, store, container):
    store.write(enter(devices, container, weight_kg=20_000.0))
    result = store.write(leave(devices, container))

    assert visit_rules(db, site_id, container) == []
    assert [command.decision for _, command in result.commands] == ["release"]
    recorded = decisions(db, site_id)
    assert len(recorded) == 1
    assert recorded[0]["decision"] == "release"
    assert recorded[0]["container_numbers"] == [container]
    assert recorded[0]["validity"] == timedelta(seconds=30)


def test_undeclared_container_alert_and_manual_decision(db, site_id, devices, store):
    number = new_container_number()
    store.write(enter(devices, number))
    result = store.write(leave(devices, number))

    rules = visit_rules(db, site_id, number)
    assert "undeclared_container" in rules
    assert "exit_without_release" in rules
    assert [command.decision for _, command in result.commands] == ["manual"]
    assert reason_codes(decisions(db, site_id)[0]) == ["declaration_unknown"]


def test_declaration_mismatch_when_truck_presents_other(db, site_id, devices, store, container):
    other = declare(db, site_id, [{"number": new_container_number()}])
    entered = enter(devices, container, declaration=other)
    store.write(entered)

    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "declaration_mismatch"
    assert alert["severity"] == "critical"
    assert alert["evidence"]["observed"] == other
    assert alert["evidence"]["event_ids"] == [event_id_of(entered[1])]


def test_seal_mismatch_alert_carries_evidence(db, site_id, devices, store, container):
    entered = enter(devices, container, seals=("SL999",))
    store.write(entered)

    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "seal_mismatch"
    assert alert["severity"] == "critical"
    assert "施封号不符" in alert["message_zh"]
    assert "seal number differs" in alert["message_en"]
    assert alert["evidence"]["declared"] == [SEAL]
    assert alert["evidence"]["observed"] == ["SL999"]
    assert alert["evidence"]["event_ids"] == [event_id_of(entered[1])]


def test_seal_missing_and_extra(db, site_id, devices, store):
    missing, extra = new_container_number(), new_container_number()
    declare(db, site_id, [{"number": missing, "seals": [SEAL]}, {"number": extra, "seals": [SEAL]}])

    store.write(enter(devices, missing, seals=()), enter(devices, extra, seals=(SEAL, "SL777")))

    assert visit_rules(db, site_id, missing) == ["seal_missing"]
    assert visit_rules(db, site_id, extra) == ["seal_extra"]


def test_repeated_seal_mismatch_updates_one_alert(db, site_id, devices, store, container):
    store.write(enter(devices, container, seals=("SL999",)))
    store.write(enter(devices, container, minutes=5, seals=("SL888",)))

    alerts = open_alerts(db, site_id, container)
    assert len(alerts) == 1
    assert alerts[0]["occurrences"] == 2
    assert alerts[0]["evidence"]["observed"] == ["SL888"]


def test_unrelated_event_leaves_alert_untouched(db, site_id, devices, store, container):
    store.write(enter(devices, container, seals=("SL999",)))
    store.write(devices.event("SCAN01", scan(container), "scan.result", at(10)))

    [alert] = open_alerts(db, site_id, container)
    assert alert["occurrences"] == 1


def test_eseal_opened_outside_approval_alerts(db, site_id, devices, store, container):
    store.write(enter(devices, container))
    approved = devices.event(
        "ES01", eseal(container, SEAL, opened=True, approved=True), "seal.status", at(10)
    )
    store.write(approved)
    assert visit_rules(db, site_id, container) == []

    opened = devices.event("ES01", eseal(container, SEAL, opened=True), "seal.status", at(20))
    store.write(opened)
    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "eseal_abnormal"
    assert alert["evidence"]["event_ids"] == [event_id_of(opened[1])]

    result = store.write(leave(devices, container))
    assert [command.decision for _, command in result.commands] == ["hold"]
    assert reason_codes(decisions(db, site_id)[0]) == ["eseal_abnormal"]


@pytest.mark.parametrize(
    ("weighed_kg", "raises"),
    [(21_000.0, False), (21_000.1, True), (19_000.0, False), (18_999.9, True)],
)
def test_weight_tolerance_boundary(db, site_id, devices, store, container, weighed_kg, raises):
    store.write(enter(devices, container, weight_kg=weighed_kg))

    assert ("weight_out_of_tolerance" in visit_rules(db, site_id, container)) is raises


def test_weight_alert_evidence(db, site_id, devices, store, container):
    store.write(enter(devices, container, weight_kg=23_000.0))

    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "weight_out_of_tolerance"
    assert alert["evidence"]["declared_kg"] == 20_000.0
    assert alert["evidence"]["observed_kg"] == 23_000.0
    assert alert["evidence"]["difference_kg"] == 3_000.0
    assert alert["evidence"]["tolerance_kg"] == 1_000.0


def test_weight_of_two_containers_compared_as_load(db, site_id, devices, store):
    first, second = new_container_number(), new_container_number()
    declare(db, site_id, [{"number": first, "seals": [SEAL], "weight": 12_000.0}])
    declare(db, site_id, [{"number": second, "seals": [SEAL], "weight": 8_000.0}])

    store.write(
        devices.event(
            "IN01", gate_passage([first, second], seals=(SEAL,), weight_kg=20_900.0), occurred_at=at(0)
        )
    )

    assert visit_rules(db, site_id, first) == []
    assert visit_rules(db, site_id, second) == []


def test_weight_skipped_when_load_partly_unreadable(db, site_id, devices, store):
    first = new_container_number()
    declare(db, site_id, [{"number": first, "seals": [SEAL], "weight": 12_000.0}])

    # The rear container's number fails its check digit, so the 20,900 kg weighed
    # cannot be split between the two containers.
    store.write(
        devices.event(
            "IN01",
            gate_passage([first, "CSQU3054384"], seals=(SEAL,), weight_kg=20_900.0),
            occurred_at=at(0),
        )
    )

    assert "weight_out_of_tolerance" not in visit_rules(db, site_id, first)


def test_inspection_not_scanned_holds_exit(db, site_id, devices, store):
    number = new_container_number()
    declare(db, site_id, [{"number": number, "seals": [SEAL]}], status="inspection_ordered")
    store.write(enter(devices, number))
    result = store.write(leave(devices, number))

    assert sorted(visit_rules(db, site_id, number)) == ["exit_without_release", "inspection_not_scanned"]
    assert [command.decision for _, command in result.commands] == ["hold"]
    assert reason_codes(decisions(db, site_id)[0]) == ["exit_without_release", "inspection_not_scanned"]


def test_scan_suspicious_alerts_and_holds(db, site_id, devices, store, container):
    store.write(enter(devices, container))
    store.write(devices.event("SCAN01", scan(container, "suspicious"), "scan.result", at(20)))
    result = store.write(leave(devices, container))

    assert visit_rules(db, site_id, container) == ["scan_suspicious"]
    assert [command.decision for _, command in result.commands] == ["hold"]


def test_exit_without_release_clears_after_release(db, site_id, devices, store):
    number = new_container_number()
    declaration = declare(db, site_id, [{"number": number, "seals": [SEAL]}], status="declared")
    store.write(enter(devices, number))
    result = store.write(leave(devices, number))
    assert visit_rules(db, site_id, number) == ["exit_without_release"]
    assert [command.decision for _, command in result.commands] == ["hold"]

    set_status(db, declaration, "released")
    with db.transaction():
        reevaluate_containers(db, site_id, [number])

    assert visit_rules(db, site_id, number) == []
    cleared = db.execute(
        "SELECT status, resolved_by FROM alerts WHERE site_id = %s AND rule_code = 'exit_without_release'",
        (site_id,),
    ).fetchone()
    assert cleared == ("resolved", None)


def test_other_authority_hold_blocks_released_exit(db, site_id, devices, store):
    number = new_container_number()
    declare(db, site_id, [{"number": number, "seals": [SEAL]}], other_holds=("quarantine",))
    store.write(enter(devices, number))
    result = store.write(leave(devices, number))

    assert [command.decision for _, command in result.commands] == ["hold"]
    assert reason_codes(decisions(db, site_id)[0]) == ["exit_without_release", "other_authority_hold"]
    [alert] = open_alerts(db, site_id, number)
    assert alert["evidence"]["other_holds"] == ["quarantine"]


def test_held_then_released_status_reevaluates_decision_inputs(db, site_id, devices, store):
    number = new_container_number()
    declaration = declare(db, site_id, [{"number": number, "seals": [SEAL]}], status="held")
    store.write(enter(devices, number))
    set_status(db, declaration, "released")
    with db.transaction():
        reevaluate_containers(db, site_id, [number])

    result = store.write(leave(devices, number))

    assert [command.decision for _, command in result.commands] == ["release"]


@pytest.mark.parametrize(
    ("raw", "unreadable"),
    [
        ("GYOU4047990", False),  # remainder 10 maps to check digit 0
        ("DDDU5010600", False),  # remainder 10 maps to check digit 0
        ("GYOU4047991", True),  # wrong check digit
        ("CSQU3054384", True),
        ("CSQU305438", True),  # too short
    ],
)
def test_container_number_check_digit(db, site_id, devices, store, raw, unreadable):
    topic, event = devices.event("IN01", gate_passage([raw]), occurred_at=at(0))
    store.write((topic, event))

    alerts = [item for item in open_alerts(db, site_id) if item["subject_kind"] == "passage"]
    assert (alerts != []) is unreadable
    if unreadable:
        assert alerts[0]["rule_code"] == "container_number_unreadable"
        assert alerts[0]["subject_id"] == event_id_of(event)
        assert alerts[0]["evidence"]["observed"][0]["raw"] == raw


def test_unreadable_exit_container_gets_manual(db, site_id, devices, store):
    result = store.write(
        devices.event("OUT01", gate_passage(["CSQU3054384"], lane="OUT01", direction="out", decision=True))
    )

    assert [command.decision for _, command in result.commands] == ["manual"]
    assert reason_codes(decisions(db, site_id)[0]) == ["container_number_unreadable"]


@pytest.mark.parametrize(("confidence", "raises"), [(0.59, True), (0.6, False)])
def test_ocr_low_confidence_threshold(db, site_id, devices, store, confidence, raises):
    store.write(devices.event("IN01", gate_passage([new_container_number()], confidence=confidence)))

    rules = [item["rule_code"] for item in open_alerts(db, site_id) if item["subject_kind"] == "passage"]
    assert ("ocr_low_confidence" in rules) is raises


def test_dwell_exactly_at_limit_not_flagged(db, site_id, devices, store, container):
    limit = RuleSettings().dwell_limit
    store.write(enter(devices, container))

    with db.transaction():
        reevaluate_containers(db, site_id, [container], RuleSettings(), at(0) + limit)
    assert visit_rules(db, site_id, container) == []

    with db.transaction():
        reevaluate_containers(db, site_id, [container], RuleSettings(), at(0) + limit + timedelta(seconds=1))
    [alert] = open_alerts(db, site_id, container)
    assert alert["rule_code"] == "dwell_exceeded"
    assert alert["evidence"]["limit_hours"] == 72.0


def test_stale_lane_sensor_makes_decision_manual(db, site_id, devices, store, container):
    devices.lane("OUT01")
    devices.lane("OUT01-ESEAL", kind="eseal_reader")
    db.execute(
        "UPDATE devices SET lane_id = 'OUT01', created_at = now() - interval '1 hour' WHERE device_id = %s",
        (f"{site_id}-OUT01-ESEAL",),
    )
    store.write(enter(devices, container))
    result = store.write(leave(devices, container))

    assert [command.decision for _, command in result.commands] == ["manual"]
    assert reason_codes(decisions(db, site_id)[0]) == ["sensor_stale"]
    mode, reason = db.execute(
        "SELECT mode, mode_reason FROM lanes WHERE site_id = %s AND lane_id = 'OUT01'", (site_id,)
    ).fetchone()
    assert mode == "manual"
    assert f"{site_id}-OUT01-ESEAL" in reason


def test_lane_back_to_automatic_after_decision(db, site_id, devices, store, container):
    db.execute("UPDATE lanes SET mode = 'manual', mode_reason = 'x' WHERE site_id = %s", (site_id,))
    store.write(enter(devices, container))
    store.write(leave(devices, container))

    mode, reason = db.execute(
        "SELECT mode, mode_reason FROM lanes WHERE site_id = %s AND lane_id = 'OUT01'", (site_id,)
    ).fetchone()
    assert mode == "automatic"
    assert reason is None


def test_redelivered_passage_decided_once(db, site_id, devices, store, container):
    store.write(enter(devices, container))
    exit_event = leave(devices, container)
    first = store.write(exit_event)
    again = store.write(exit_event)

    assert len(decisions(db, site_id)) == 1
    assert [command.command_id for _, command in again.commands] == [first.commands[0][1].command_id]


def test_late_entry_changes_alerts_not_sent_decision(db, site_id, devices, store, container):
    exit_event = leave(devices, container, seals=(SEAL,))
    first = store.write(exit_event)
    store.write(enter(devices, container, seals=("SL999",), minutes=0))

    assert [command.decision for _, command in first.commands] == ["release"]
    assert len(decisions(db, site_id)) == 1
    # The exit read the declared seal last, so the late entry's misread does not count.
    assert visit_rules(db, site_id, container) == []


def test_dwell_sweep_through_collector(db, site_id, devices, store, container, monkeypatch):
    from collector.service import Collector
    from collector.settings import CollectorSettings

    store.write(
        devices.event(
            "IN01",
            gate_passage([container], seals=(SEAL,)),
            occurred_at=datetime.now(UTC) - timedelta(hours=2),
        )
    )
    monkeypatch.setenv("KOUAN_SITE_FILTER", site_id)
    monkeypatch.setenv("KOUAN_DWELL_LIMIT_HOURS", "1")
    collector = Collector(CollectorSettings())

    swept = collector.sweep_dwell()

    assert swept == 1
    assert visit_rules(db, site_id, container) == ["dwell_exceeded"]


@pytest.mark.parametrize(("ahead_s", "raises"), [(120.0, False), (121.0, True)])
def test_clock_ahead_beyond_limit_raises_drift(db, site_id, devices, store, ahead_s, raises):
    sent = datetime.now(UTC) + timedelta(seconds=ahead_s + 0.5 if raises else ahead_s - 0.5)
    store.write(devices.event("IN01", gate_passage([new_container_number()]), occurred_at=sent))

    device_alerts = [item for item in open_alerts(db, site_id) if item["subject_kind"] == "device"]
    assert [item["rule_code"] for item in device_alerts] == (["clock_drift"] if raises else [])
    if raises:
        assert device_alerts[0]["evidence"]["source"] == "event"
        assert device_alerts[0]["evidence"]["offset_s"] < -120.0


def test_clock_behind_from_events_not_concluded(db, site_id, devices, store):
    store.write(
        devices.event(
            "IN01", gate_passage([new_container_number()]), occurred_at=datetime.now(UTC) - timedelta(hours=1)
        )
    )

    assert [item for item in open_alerts(db, site_id) if item["subject_kind"] == "device"] == []
