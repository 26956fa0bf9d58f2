"""Grading without a full run: unavailable endpoints and rules that do not exist."""

from __future__ import annotations

from datetime import date

from simulators.grade import NO_RULE, UNAVAILABLE, ApiReader, Grader, grade_run
from simulators.plan import plan_day
from simulators.scenario import load_scenario
from simulators.truth import truth_document, write_truth
from tests.conftest import free_port

DAY = date(2026, 12, 3)


def _truth():
    return truth_document(plan_day(load_scenario("fault_drill"), 3, DAY))


def test_grade_unreachable_api_reports_unavailable(tmp_path):
    truth_path = tmp_path / "drill.truth.json"
    write_truth(plan_day(load_scenario("fault_drill"), 3, DAY), truth_path)

    grade = grade_run(truth_path, f"http://127.0.0.1:{free_port()}", api_key="unused")

    assert grade.alerts_status == UNAVAILABLE
    assert {row.status for row in grade.rules} == {UNAVAILABLE}
    assert grade.statuses.status == UNAVAILABLE
    assert grade.events.status == UNAVAILABLE  # no run ledger: the run never happened
    assert "alerts" in grade.unavailable


def test_grade_rule_missing_reports_no_rule():
    grader = Grader(_truth(), None, ApiReader("http://127.0.0.1:1"))

    rows = grader._rule_grades(alerts=[], implemented={"seal_mismatch"})

    by_rule = {row.rule: row for row in rows}
    assert by_rule["seal_mismatch"].status == "graded"
    assert by_rule["seal_mismatch"].missed == by_rule["seal_mismatch"].injected
    assert by_rule["weight_out_of_tolerance"].status == NO_RULE
    assert by_rule["weight_out_of_tolerance"].detected == 0


def test_grade_side_rule_not_false_alarm():
    truth = _truth()
    fault = next(f for f in truth["faults"] if f["kind"] == "seal_mismatch")
    alerts = [
        {
            "alert_id": 1,
            "rule_code": "seal_mismatch",
            "subject_kind": "visit",
            "container_number": fault["container_numbers"][0],
        },
        {
            "alert_id": 2,
            "rule_code": "seal_extra",
            "subject_kind": "visit",
            "container_number": fault["container_numbers"][0],
        },
    ]
    grader = Grader(truth, None, ApiReader("http://127.0.0.1:1"))

    rows = {row.rule: row for row in grader._rule_grades(alerts, implemented={"seal_mismatch", "seal_extra"})}

    assert rows["seal_mismatch"].detected == 1
    assert "seal_extra" not in rows


def test_grade_alert_on_clean_container_is_false_alarm():
    truth = _truth()
    clean = next(t for t in truth["trucks"] if not t["faults"])
    alerts = [
        {
            "alert_id": 1,
            "rule_code": "weight_out_of_tolerance",
            "subject_kind": "visit",
            "container_number": clean["containers"][0]["container_number"] + " ",
        },
    ]
    grader = Grader(truth, None, ApiReader("http://127.0.0.1:1"))

    rows = {row.rule: row for row in grader._rule_grades(alerts, implemented={"weight_out_of_tolerance"})}

    assert rows["weight_out_of_tolerance"].false_alarms == 1
