"""The pure correlation core: rules, decisions and order independence, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.correlation.core import Decision, combine, decide, evaluate
from collector.correlation.model import Declaration, DeclaredContainer, Observation, VisitState
from collector.correlation.rules import RuleSettings

T0 = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)
NUMBER = "CSQU3054383"
RULES = RuleSettings()


def obs(seq: int, kind: str = "gate.passage", minutes: int = 0, **values) -> Observation:
    if "seals" in values:
        values["seal_numbers"] = values.pop("seals")
    return Observation(
        event_id=f"e{seq}",
        device_id=values.pop("device_id", "lane"),
        seq=seq,
        kind=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        **values,
    )


def entry(seq: int = 1, minutes: int = 0, **values) -> Observation:
    values.setdefault("lane_id", "IN01")
    return obs(seq, minutes=minutes, direction="in", **values)


def exit_(seq: int = 9, minutes: int = 60, **values) -> Observation:
    values.setdefault("lane_id", "OUT01")
    values.setdefault("decision_requested", True)
    return obs(seq, minutes=minutes, direction="out", **values)


def declaration(
    status: str = "released",
    seals: tuple[str, ...] = ("SL001",),
    weight: float | None = 20_000.0,
    other_holds: tuple[str, ...] = (),
    number: str = "224820261000000001",
) -> Declaration:
    return Declaration(number, status, "import", DeclaredContainer(NUMBER, seals, weight), other_holds)


RELEASED = (declaration(),)


def run(observations, declarations=RELEASED, now=NOW, rules=RULES):
    state = VisitState("S", NUMBER)
    outcome = None
    for item in observations:
        outcome = evaluate(state, tuple(declarations), item, rules, now)
        state = outcome.state
    assert outcome is not None
    return outcome


def codes(outcome) -> list[str]:
    return [finding.rule_code for finding in outcome.findings]


def test_clean_visit_raises_nothing_and_releases():
    outcome = run([entry(seals=("SL001",), gross_weight_kg=20_000.0), exit_(seals=("SL001",))])

    assert codes(outcome) == []
    assert outcome.decision == Decision("release")
    assert outcome.summary.status == "exited"


def test_undeclared_container_flagged_and_decision_manual():
    outcome = run([entry(), exit_()], declarations=())

    assert "undeclared_container" in codes(outcome)
    assert "exit_without_release" in codes(outcome)
    assert outcome.decision is not None
    assert outcome.decision.decision == "manual"
    assert [reason.code for reason in outcome.decision.reasons] == ["declaration_unknown"]


def test_undeclared_container_with_open_eseal_held():
    eseal = {"sealed": False, "opened": True, "tampered": False, "approved_opening": False}
    outcome = run([entry(), obs(2, "seal.status", 10, eseal=eseal), exit_()], declarations=())

    assert outcome.decision is not None
    assert outcome.decision.decision == "hold"
    assert [reason.code for reason in outcome.decision.reasons] == ["eseal_abnormal"]


def test_undeclared_container_at_entry_only_warns():
    outcome = run([entry()], declarations=())

    assert codes(outcome) == ["undeclared_container"]
    assert outcome.findings[0].severity == "warning"


def test_declaration_mismatch_when_truck_presents_other_number():
    outcome = run([entry(declaration_number="224820261000009999", seals=("SL001",))])

    assert codes(outcome) == ["declaration_mismatch"]
    assert outcome.findings[0].evidence["declared"] == "224820261000000001"
    assert outcome.findings[0].evidence["observed"] == "224820261000009999"


def test_declaration_presented_picks_matching_declaration():
    first = declaration(number="224820261000000001", status="held")
    second = declaration(number="224820261000000002", status="released")

    outcome = run(
        [entry(declaration_number="224820261000000002", seals=("SL001",))], declarations=(first, second)
    )

    assert codes(outcome) == []
    assert outcome.declaration == second


def test_seal_mismatch_holds_exit_lane():
    outcome = run([entry(seals=("SL999",)), exit_(seals=("SL999",))])

    assert codes(outcome) == ["seal_mismatch"]
    assert outcome.findings[0].evidence["declared"] == ["SL001"]
    assert outcome.findings[0].evidence["observed"] == ["SL999"]
    assert outcome.decision is not None
    assert outcome.decision.decision == "hold"
    assert [reason.code for reason in outcome.decision.reasons] == ["seal_mismatch"]


def test_seal_missing_when_no_seal_read():
    outcome = run([entry()])

    assert codes(outcome) == ["seal_missing"]
    assert outcome.findings[0].evidence["missing"] == ["SL001"]


def test_seal_extra_when_undeclared_seal_read():
    outcome = run([entry(seals=("SL001", "SL002"))])

    assert codes(outcome) == ["seal_extra"]
    assert outcome.findings[0].evidence["extra"] == ["SL002"]


def test_latest_seal_read_counts():
    outcome = run([entry(seals=("SL999",)), exit_(seals=("SL001",))])

    assert codes(outcome) == []


def test_eseal_opened_without_approval_is_abnormal():
    eseal = {"sealed": False, "opened": True, "tampered": False, "approved_opening": False}
    outcome = run([entry(seals=("SL001",)), obs(2, "seal.status", 10, eseal=eseal, seal_numbers=("SL001",))])

    assert codes(outcome) == ["eseal_abnormal"]
    assert outcome.findings[0].evidence["event_ids"] == ["e2"]


def test_eseal_opened_with_approval_is_normal():
    eseal = {"sealed": False, "opened": True, "tampered": False, "approved_opening": True}
    outcome = run([entry(seals=("SL001",)), obs(2, "seal.status", 10, eseal=eseal, seal_numbers=("SL001",))])

    assert codes(outcome) == []


def test_eseal_tampered_is_abnormal_even_when_sealed():
    eseal = {"sealed": True, "opened": False, "tampered": True, "approved_opening": False}
    outcome = run([entry(seals=("SL001",)), obs(2, "seal.status", 10, eseal=eseal, seal_numbers=("SL001",))])

    assert codes(outcome) == ["eseal_abnormal"]


WEIGHT_CASES = [
    # declared kg, weighed kg, raises
    (20_000.0, 21_000.0, False),  # exactly 5 %: tolerance met
    (20_000.0, 21_000.1, True),
    (20_000.0, 19_000.0, False),
    (20_000.0, 18_999.9, True),
    (4_000.0, 4_500.0, False),  # 5 % is 200 kg, the 500 kg floor applies, exactly met
    (4_000.0, 4_500.1, True),
]


def test_weight_tolerance_boundaries():
    for declared, weighed, raises in WEIGHT_CASES:
        outcome = run(
            [entry(seals=("SL001",), gross_weight_kg=weighed)], declarations=(declaration(weight=declared),)
        )
        assert ("weight_out_of_tolerance" in codes(outcome)) is raises, (declared, weighed)


def test_weight_of_two_container_load_compared_as_sum():
    load = (NUMBER, "TCNU7200794")
    passage = entry(seals=("SL001",), gross_weight_kg=30_000.0, passage_containers=load)
    state = VisitState("S", NUMBER)

    within = evaluate(state, (declaration(weight=20_000.0),), passage, RULES, NOW, {"TCNU7200794": 10_000.0})
    beyond = evaluate(state, (declaration(weight=20_000.0),), passage, RULES, NOW, {"TCNU7200794": 5_000.0})
    unknown = evaluate(state, (declaration(weight=20_000.0),), passage, RULES, NOW, {})

    assert codes(within) == []
    assert codes(beyond) == ["weight_out_of_tolerance"]
    assert beyond.findings[0].evidence["declared_kg"] == 25_000.0
    assert codes(unknown) == []


def test_inspection_not_scanned_holds():
    outcome = run(
        [entry(seals=("SL001",)), exit_(seals=("SL001",))], declarations=(declaration("inspection_ordered"),)
    )

    assert "inspection_not_scanned" in codes(outcome)
    assert outcome.decision is not None
    assert {reason.code for reason in outcome.decision.reasons} == {
        "inspection_not_scanned",
        "exit_without_release",
    }


def test_inspection_with_scan_before_exit_not_flagged():
    scan = obs(2, "scan.result", 20, scan_result="clear", device_id="scanner")
    outcome = run(
        [entry(seals=("SL001",)), scan, exit_(seals=("SL001",))],
        declarations=(declaration("inspection_ordered"),),
    )

    assert "inspection_not_scanned" not in codes(outcome)


def test_failed_scan_does_not_count_as_inspection():
    scan = obs(2, "scan.result", 20, scan_result="failed", device_id="scanner")
    outcome = run(
        [entry(seals=("SL001",)), scan, exit_(seals=("SL001",))],
        declarations=(declaration("inspection_ordered"),),
    )

    assert "inspection_not_scanned" in codes(outcome)


def test_scan_suspicious_holds_released_container():
    scan = obs(2, "scan.result", 20, scan_result="suspicious", device_id="scanner")
    outcome = run([entry(seals=("SL001",)), scan, exit_(seals=("SL001",))])

    assert codes(outcome) == ["scan_suspicious"]
    assert outcome.decision is not None
    assert outcome.decision.decision == "hold"


def test_exit_without_release_for_each_unreleased_status():
    for status in ("declared", "held", "cancelled"):
        outcome = run([entry(seals=("SL001",)), exit_(seals=("SL001",))], declarations=(declaration(status),))
        assert codes(outcome) == ["exit_without_release"], status
        assert outcome.findings[0].evidence["declaration_status"] == status
        assert outcome.decision is not None
        assert outcome.decision.decision == "hold", status


def test_other_authority_hold_blocks_released_container():
    outcome = run(
        [entry(seals=("SL001",)), exit_(seals=("SL001",))],
        declarations=(declaration(other_holds=("quarantine",)),),
    )

    assert codes(outcome) == ["exit_without_release"]
    assert outcome.findings[0].evidence["other_holds"] == ["quarantine"]
    assert outcome.decision is not None
    assert {reason.code for reason in outcome.decision.reasons} == {
        "exit_without_release",
        "other_authority_hold",
    }


def test_dwell_exactly_at_limit_not_flagged():
    limit = RULES.dwell_limit

    at_limit = run([entry(seals=("SL001",))], now=T0 + limit)
    beyond = run([entry(seals=("SL001",))], now=T0 + limit + timedelta(seconds=1))

    assert codes(at_limit) == []
    assert codes(beyond) == ["dwell_exceeded"]


def test_dwell_of_exited_visit_measured_to_exit():
    late_exit = exit_(minutes=int(RULES.dwell_limit.total_seconds() // 60) + 1, seals=("SL001",))

    outcome = run([entry(seals=("SL001",)), late_exit], now=NOW + timedelta(days=30))

    assert codes(outcome) == ["dwell_exceeded"]
    assert outcome.decision is not None
    assert outcome.decision.decision == "release"


def test_stale_sensor_makes_release_manual():
    passage = exit_(seals=("SL001",))
    state = VisitState("S", NUMBER, (entry(seals=("SL001",)), passage))

    decision = decide(state, (declaration(),), passage, RULES, {}, ("OUT01-scale",))

    assert decision.decision == "manual"
    assert [reason.code for reason in decision.reasons] == ["sensor_stale"]


def test_combine_prefers_hold_then_manual():
    hold = Decision("hold")
    manual = Decision("manual")
    release = Decision("release")

    assert combine([release, manual]).decision == "manual"
    assert combine([manual, hold]).decision == "hold"
    assert combine([release, release]).decision == "release"


def test_seal_correction_replaces_misread_seal():
    correction = obs(
        50,
        "read.correction",
        0,
        device_id="kouan-corrections",
        corrects_event_id="e1",
        correction_field="seal_number",
        original_value="SL00l",
        corrected_value="SL001",
    )

    before = run([entry(seals=("SL00l",))])
    after = run([entry(seals=("SL00l",)), correction])

    assert codes(before) == ["seal_mismatch"]
    assert codes(after) == []
    assert after.summary.seal_numbers == ("SL001",)


def test_container_correction_moves_passage_away():
    marker = obs(
        50,
        "read.correction",
        0,
        device_id="kouan-corrections",
        corrects_event_id="e1",
        correction_field="container_number",
        original_value=NUMBER,
        corrected_value="TCNU7200794",
    )

    outcome = run([entry(seals=("SL001",)), marker])

    assert outcome.summary.status == "void"
    assert codes(outcome) == []


# --- order independence ---------------------------------------------------------------


@st.composite
def scenarios(draw):
    """A visit's events in device order, and the declarations known, drawn at random."""
    declared_seals = ("SL001",)
    status = draw(st.sampled_from(["declared", "inspection_ordered", "released", "held", "cancelled"]))
    holds = draw(st.sampled_from([(), ("quarantine",)]))
    declared = draw(st.booleans())
    declarations = (declaration(status, declared_seals, 20_000.0, holds),) if declared else ()

    events = [
        entry(
            1,
            0,
            seals=draw(st.sampled_from([("SL001",), ("SL999",), ()])),
            gross_weight_kg=draw(st.sampled_from([20_000.0, 21_000.0, 23_000.0, None])),
        )
    ]
    if draw(st.booleans()):
        events.append(
            obs(
                2,
                "scan.result",
                20,
                device_id="scanner",
                scan_result=draw(st.sampled_from(["clear", "suspicious", "failed"])),
            )
        )
    if draw(st.booleans()):
        eseal = {
            "sealed": True,
            "opened": draw(st.booleans()),
            "tampered": False,
            "approved_opening": draw(st.booleans()),
        }
        events.append(obs(3, "seal.status", 30, device_id="reader", eseal=eseal, seal_numbers=("SL001",)))
    if draw(st.booleans()):
        events.append(exit_(4, 60, seals=draw(st.sampled_from([("SL001",), ("SL999",)]))))
    if draw(st.booleans()):
        # A second exit attempt after a hold, with the same clock minute: seq orders them.
        events.append(exit_(5, 60, seals=("SL001",)))
    order = draw(st.permutations(range(len(events))))
    return declarations, events, [events[index] for index in order]


def _conclusions(outcome, declarations):
    asking = [item for item in outcome.state.observations if item.decision_requested]
    decisions = [decide(outcome.state, declarations, item, RULES, {}) for item in asking]
    return outcome.summary, outcome.findings, outcome.cleared, decisions


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_any_arrival_order_gives_same_conclusions(scenario):
    declarations, in_device_order, arrival = scenario

    expected = _conclusions(run(in_device_order, declarations), declarations)
    actual = _conclusions(run(arrival, declarations), declarations)

    assert actual == expected


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_decision_on_arrival_matches_final_when_predecessors_arrived(scenario):
    declarations, _, arrival = scenario
    state = VisitState("S", NUMBER)
    issued = {}
    for item in arrival:
        outcome = evaluate(state, declarations, item, RULES, NOW)
        state = outcome.state
        if outcome.decision is not None:
            predecessors_arrived = all(
                other in state.observations for other in arrival if other.sort_key < item.sort_key
            )
            if predecessors_arrived:
                issued[item.event_id] = outcome.decision

    for event_id, decision in issued.items():
        passage = next(item for item in state.observations if item.event_id == event_id)
        assert decide(state, declarations, passage, RULES, {}) == decision
