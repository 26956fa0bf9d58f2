"""Declaration lifecycle: allowed status changes and the per-declaration container view."""

from __future__ import annotations

import pytest

from collector.correlation.actions import ActionNotFound, InvalidAction
from collector.correlation.lifecycle import check_status_change, declaration_progress
from collector.correlation.shell import reevaluate_containers
from tests.collector.support import (
    Devices,
    Store,
    at,
    declare,
    gate_passage,
    new_container_number,
    scan,
    set_status,
    visit_rules,
)

ALLOWED = [
    (None, "declared"),
    ("declared", "inspection_ordered"),
    ("inspection_ordered", "released"),
    ("released", "held"),
    ("held", "released"),
    ("declared", "cancelled"),
    ("released", "released"),
    ("released", "cancelled"),
]
REJECTED = [("cancelled", "released"), ("held", "declared"), ("inspection_ordered", "declared")]


def test_allowed_status_changes_pass():
    for current, requested in ALLOWED:
        check_status_change("224820261000000001", current, requested)


def test_rejected_status_changes_raise():
    for current, requested in REJECTED:
        with pytest.raises(InvalidAction) as caught:
            check_status_change("224820261000000001", current, requested)
        assert caught.value.code == "declaration_status_change_invalid", (current, requested)
        assert "224820261000000001" in caught.value.message_zh


def test_unknown_status_rejected():
    with pytest.raises(InvalidAction) as caught:
        check_status_change("224820261000000001", "declared", "lost")
    assert caught.value.code == "declaration_status_unknown"


def test_declaration_progress_per_container(stack, db, site_id):
    devices = Devices(stack.home, stack.database_url, site_id)
    store = Store(db, stack.database_url)
    left, scanned, missing = new_container_number(), new_container_number(), new_container_number()
    number = declare(
        db, site_id, [{"number": left}, {"number": scanned}, {"number": missing}], status="released"
    )
    store.write(devices.event("IN01", gate_passage([left, scanned]), occurred_at=at(0)))
    store.write(devices.event("SCAN01", scan(scanned), "scan.result", at(10)))
    store.write(
        devices.event("OUT01", gate_passage([left], lane="OUT01", direction="out"), occurred_at=at(30))
    )

    progress = {item.container_number: item for item in declaration_progress(db, number)}

    assert (progress[left].arrived, progress[left].scanned, progress[left].left) == (True, False, True)
    assert (progress[scanned].arrived, progress[scanned].scanned, progress[scanned].left) == (
        True,
        True,
        False,
    )
    assert progress[missing].missing is True
    assert progress[missing].arrived is False
    assert all(item.released for item in progress.values())


def test_status_change_reevaluates_covered_containers(stack, db, site_id):
    devices = Devices(stack.home, stack.database_url, site_id)
    store = Store(db, stack.database_url)
    first, second = new_container_number(), new_container_number()
    number = declare(db, site_id, [{"number": first}, {"number": second}], status="released")
    store.write(
        devices.event(
            "OUT01", gate_passage([first, second], lane="OUT01", direction="out"), occurred_at=at(0)
        )
    )
    assert visit_rules(db, site_id, first) == []

    set_status(db, number, "held")
    with db.transaction():
        count = reevaluate_containers(db, site_id, [first, second])

    assert count == 2
    assert visit_rules(db, site_id, first) == ["exit_without_release"]
    assert visit_rules(db, site_id, second) == ["exit_without_release"]
    assert [item.released for item in declaration_progress(db, number)] == [False, False]


def test_progress_of_unknown_declaration_not_found(db):
    with pytest.raises(ActionNotFound) as caught:
        declaration_progress(db, "224820261999999999")
    assert caught.value.code == "declaration_not_found"
