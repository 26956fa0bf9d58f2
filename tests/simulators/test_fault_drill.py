"""The fault drill end to end: real edge agents, broker, collector and API, then its grade.

Every fault kind is injected at least once. The grade must show each fault whose
rule the collector implements as detected, every other rule as "no rule", no false
alarm on clean traffic, and no event lost or stored twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kouan.settings import CommonSettings
from simulators.grade import GRADED, NO_RULE, Grade, grade_run, implemented_rules
from simulators.plan import plan_day
from simulators.runner import run_day
from simulators.scenario import FAULT_KINDS, load_scenario
from simulators.truth import read_truth
from tests.conftest import start_collector

SEED = 3
SPEED = 600.0


@pytest.fixture
def drill(site_id, processes, api_url, tmp_path) -> tuple[Grade, dict, dict]:
    """Run the fault drill at the test's site and grade it; return grade, truth and ledger."""
    start_collector(processes, site_id, 1)
    scenario = load_scenario("fault_drill")
    site = scenario.site.model_copy(update={"site_id": site_id})
    scenario = scenario.model_copy(update={"site": site})
    day = datetime.now(ZoneInfo(site.timezone)).date() - timedelta(days=1)
    truth_path = tmp_path / "drill.truth.json"

    run_day(
        CommonSettings(), plan_day(scenario, SEED, day), api_url=api_url, speed=SPEED, truth_path=truth_path
    )
    truth, ledger = read_truth(truth_path)
    return grade_run(truth_path, api_url), truth, ledger


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fault_drill_graded_end_to_end(drill):
    grade, truth, ledger = drill
    implemented = implemented_rules()

    # Every fault kind was injected and the run left nothing behind.
    assert {fault["kind"] for fault in truth["faults"]} == set(FAULT_KINDS)
    assert sum(ledger["outbox_left"].values()) == 0
    assert ledger["declaration_errors"] == []

    # Detection per rule: a rule that exists detects every fault; one that does not says so.
    assert grade.alerts_status == GRADED
    for row in grade.rules:
        if row.rule in implemented:
            assert row.status == GRADED, row
            assert row.detected == row.injected, row
            assert row.missed == 0, row
        else:
            assert row.status == NO_RULE, row
        assert row.false_alarms == 0, row

    # Faults that must change nothing changed nothing.
    for row in grade.no_effect:
        assert row.status == GRADED, row
        assert row.affected == 0, row

    # Every event the edge accepted was stored exactly once; nothing injected was stored.
    assert grade.events.status == GRADED, grade.unavailable
    assert grade.events.published == len(ledger["events"])
    assert grade.events.stored == grade.events.published
    assert grade.events.lost == 0
    assert grade.events.duplicated == 0
    assert grade.events.unexpected == 0

    # Gate decisions: clean exits released, faulty exits held or manual.
    assert grade.decisions.status == GRADED, grade.unavailable
    assert grade.decisions.clean_released == grade.decisions.clean_exits, grade.decisions.wrong
    assert grade.decisions.faulty_not_released == grade.decisions.faulty_exits, grade.decisions.wrong
    assert grade.decisions.without_decision == 0

    # Each container's final visit as in the truth.
    assert grade.statuses.status == GRADED
    assert grade.statuses.mismatched == []
    assert grade.statuses.matched == grade.statuses.containers
