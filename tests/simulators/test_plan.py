"""Scenario files, day plans and ground truth: pure, deterministic, no servers."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from kouan.identifiers import ContainerNumberError, parse_container_number
from simulators import reference
from simulators.plan import FAULT_RULES, plan_day
from simulators.scenario import FAULT_KINDS, SCENARIO_DIR, ScenarioError, load_scenario, shipped_scenarios
from simulators.truth import dumps, truth_document, write_truth

DAY = date(2026, 12, 3)


def test_shipped_scenarios_load():
    names = shipped_scenarios()

    assert {"quiet_night", "peak_morning", "bad_day", "fault_drill"} <= set(names)
    for name in names:
        assert load_scenario(name).name == name


def test_scenario_unknown_key_rejected(tmp_path):
    text = (SCENARIO_DIR / "quiet_night.yaml").read_text(encoding="utf-8")
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("eseal_share:", "esael_share:"), encoding="utf-8")

    with pytest.raises(ScenarioError, match="esael_share"):
        load_scenario(path)


def test_scenario_share_above_one_rejected(tmp_path):
    text = (SCENARIO_DIR / "quiet_night.yaml").read_text(encoding="utf-8")
    path = tmp_path / "share.yaml"
    path.write_text(text.replace("ocr_misread: 0.01", "ocr_misread: 3"), encoding="utf-8")

    with pytest.raises(ScenarioError, match="at most 1"):
        load_scenario(path)


def test_truth_same_seed_identical(tmp_path):
    scenario = load_scenario("bad_day")
    first, second = tmp_path / "first.json", tmp_path / "second.json"

    write_truth(plan_day(scenario, 7, DAY), first)
    write_truth(plan_day(scenario, 7, DAY), second)

    assert first.read_bytes() == second.read_bytes()


def test_truth_other_seed_differs():
    scenario = load_scenario("bad_day")

    first = dumps(truth_document(plan_day(scenario, 7, DAY)))
    second = dumps(truth_document(plan_day(scenario, 8, DAY)))

    assert first != second


def test_truth_cli_same_seed_identical(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a.json", "b.json"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kouan",
                "simulate",
                "run",
                "fault_drill",
                "--plan-only",
                "--seed",
                "9",
                "--day",
                "2026-12-01",
                "--truth",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr

    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_fault_drill_injects_every_kind():
    plan = plan_day(load_scenario("fault_drill"), 3, DAY)

    assert {fault.kind for fault in plan.faults} == set(FAULT_KINDS)


def test_fault_drill_misreads_have_both_outcomes():
    plan = plan_day(load_scenario("fault_drill"), 3, DAY)
    outcomes = {fault.details["outcome"] for fault in plan.faults if fault.kind == "ocr_misread"}

    assert outcomes == {"repaired", "unreadable"}


def test_fault_rules_use_stable_codes():
    from simulators.grade import ALL_RULES

    for kind, rule in FAULT_RULES.items():
        assert kind in FAULT_KINDS
        assert rule is None or rule in ALL_RULES, kind


def test_undeclared_container_expected_undeclared_and_staying():
    plan = plan_day(load_scenario("fault_drill"), 3, DAY)
    truth = truth_document(plan)
    fault = next(fault for fault in plan.faults if fault.kind == "undeclared_container")
    truck = next(truck for truck in truth["trucks"] if truck["truck_id"] == fault.truck_id)
    container = next(c for c in truck["containers"] if c["container_number"] == fault.container_numbers[0])

    assert container["declared"] is False
    assert container["expected"] == {"status": "entered", "customs_status": "undeclared"}
    assert truck["exit_at"] is None


def test_clean_trucks_exit_released_before_day_end():
    plan = plan_day(load_scenario("peak_morning"), 1, DAY)
    clean = [truck for truck in plan.trucks if not truck.faults]

    assert clean
    for truck in clean:
        assert truck.declaration is not None
        assert truck.declaration.final_status == "released"
        assert truck.exit_at is not None
        assert truck.declaration.lifecycle[-1][0] <= truck.exit_at
        assert truck.exit_at.date() == DAY


def test_exit_before_release_exits_first():
    plan = plan_day(load_scenario("fault_drill"), 3, DAY)
    trucks = {truck.truck_id: truck for truck in plan.trucks}

    for fault in (f for f in plan.faults if f.kind == "exit_before_release"):
        truck = trucks[fault.truck_id]
        assert truck.declaration is not None
        assert truck.exit_at is not None
        assert truck.exit_at < truck.declaration.lifecycle[-1][0]


def test_declaration_numbers_follow_structure():
    from kouan.identifiers import parse_declaration_number

    plan = plan_day(load_scenario("bad_day"), 7, DAY)
    for truck in plan.trucks:
        if truck.declaration is None:
            continue
        parsed = parse_declaration_number(truck.declaration.declaration_number)
        assert parsed.value[:4] == "2225"
        assert parsed.direction == truck.declaration.direction


def test_misread_repaired_parses_to_true_number():
    import random

    rng = random.Random(5)
    for _ in range(50):
        number = reference.container_number(rng)
        misread = reference.misread_container(rng, number, "repaired")
        if misread is None:
            continue
        assert misread.raw != number
        assert parse_container_number(misread.raw).value == number


def test_misread_unreadable_fails_parse():
    import random

    rng = random.Random(6)
    for _ in range(50):
        number = reference.container_number(rng)
        misread = reference.misread_container(rng, number, "unreadable")
        assert misread is not None
        with pytest.raises(ContainerNumberError):
            parse_container_number(misread.raw)


def test_scaled_scenario_reaches_truck_count():
    scenario = load_scenario("peak_morning").scaled_to(1000)
    plan = plan_day(scenario, 1, DAY)

    assert 950 <= len(plan.trucks) <= 1050
    assert sum(len(truck.containers) for truck in plan.trucks) >= 1000
