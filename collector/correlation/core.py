"""The pure correlation core: a visit's observations and its declarations in, conclusions out.

Everything here is a function of the set of observations, sorted by the device's
``occurred_at`` and ``seq``, of the declarations that list the container, and of
``now``. Arrival order therefore never changes a conclusion, and a redelivered event
changes nothing. The shell (``shell.py``) loads and locks the state, calls
:func:`evaluate` and writes what it returns in the same transaction as the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from collector.correlation.model import Declaration, Observation, VisitState, VisitSummary
from collector.correlation.rules import (
    EXIT_WITHOUT_RELEASE,
    HOLD_RULES,
    VISIT_RULES,
    Finding,
    RuleSettings,
    VisitFacts,
    evaluate_visit_rules,
    release_blockers,
)

# Reason codes of a decision that are not visit rules.
DECLARATION_UNKNOWN = "declaration_unknown"
OTHER_AUTHORITY_HOLD = "other_authority_hold"
SENSOR_STALE = "sensor_stale"
DATABASE_UNAVAILABLE = "database_unavailable"
CONTAINER_UNREADABLE = "container_number_unreadable"


@dataclass(frozen=True)
class Reason:
    code: str
    message_zh: str
    message_en: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message_zh": self.message_zh, "message_en": self.message_en}


@dataclass(frozen=True)
class Decision:
    """The decision sent to an exit lane for one container: release, hold or manual, and why."""

    decision: str
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The result of evaluating one visit: new state, summary, alerts and, if asked, decision."""

    state: VisitState
    summary: VisitSummary
    declaration: Declaration | None
    findings: tuple[Finding, ...]
    cleared: tuple[str, ...]
    decision: Decision | None = None


def evaluate(
    visit: VisitState,
    declarations: tuple[Declaration, ...],
    new: Observation | None,
    settings: RuleSettings,
    now: datetime,
    declared_weights: Mapping[str, float | None] | None = None,
    stale_sensors: tuple[str, ...] = (),
) -> Outcome:
    """Add ``new`` (if any) to the visit and derive everything that follows from it.

    ``declarations`` are every declaration of the site that lists the container, newest
    first. ``declared_weights`` gives the declared gross weight of the other containers
    a passage carried, for the weight rule. When ``new`` is an exit passage that asks
    for a decision, the outcome carries it (see :func:`decide`).
    """
    state = visit.with_observation(new) if new is not None else visit
    declaration = choose_declaration(declarations, state)
    facts = _facts(state, declaration, declared_weights or {}, now)
    findings = evaluate_visit_rules(facts, settings)
    active = {finding.rule_code for finding in findings}
    cleared = tuple(code for code in VISIT_RULES if code not in active)

    decision = None
    if new is not None and _asks_for_decision(new):
        decision = decide(state, declarations, new, settings, declared_weights or {}, stale_sensors)
    return Outcome(state, summarise(state, declaration), declaration, findings, cleared, decision)


def _asks_for_decision(observation: Observation) -> bool:
    return (
        observation.kind == "gate.passage"
        and observation.direction == "out"
        and observation.decision_requested
    )


def decide(
    visit: VisitState,
    declarations: tuple[Declaration, ...],
    passage: Observation,
    settings: RuleSettings,
    declared_weights: Mapping[str, float | None],
    stale_sensors: tuple[str, ...] = (),
) -> Decision:
    """Decide one container of an exit passage from what happened up to the passage.

    Only observations at or before the passage in device order count, with the
    declarations as known now: a late event from before the passage changes alerts,
    never a decision already sent. Hold reasons win over manual ones, because a
    known reason to stop the truck is safe whatever else is unknown. A container
    without a declaration gets manual unless another rule holds it.
    """
    before = tuple(item for item in visit.observations if item.sort_key <= passage.sort_key)
    prior = VisitState(visit.site_id, visit.container_number, before)
    declaration = choose_declaration(declarations, prior)
    facts = _facts(prior, declaration, declared_weights, passage.occurred_at)
    findings = evaluate_visit_rules(facts, settings)

    # Without a declaration, "not released" is an unknown rather than a reason to hold,
    # so such a container gets manual.
    hold_rules = HOLD_RULES if declaration is not None else HOLD_RULES - {EXIT_WITHOUT_RELEASE}
    holds = [
        Reason(finding.rule_code, finding.message_zh, finding.message_en)
        for finding in findings
        if finding.rule_code in hold_rules
    ]
    if declaration is not None and declaration.other_holds:
        holds.append(_other_holds_reason(visit.container_number, declaration))
    if holds:
        return Decision("hold", tuple(holds))

    manual = []
    if declaration is None:
        manual.append(_declaration_unknown_reason(visit.container_number))
    if stale_sensors:
        manual.append(stale_sensor_reason(stale_sensors))
    if manual:
        return Decision("manual", tuple(manual))
    return Decision("release")


def combine(decisions: list[Decision]) -> Decision:
    """Combine the decisions of the containers on one truck: hold, else manual, else release."""
    for outcome in ("hold", "manual"):
        reasons = [reason for item in decisions if item.decision == outcome for reason in item.reasons]
        if any(item.decision == outcome for item in decisions):
            unique = tuple(dict.fromkeys(reasons))
            return Decision(outcome, unique)
    return Decision("release")


def _other_holds_reason(number: str, declaration: Declaration) -> Reason:
    holds = ", ".join(declaration.other_holds)
    return Reason(
        OTHER_AUTHORITY_HOLD,
        f"集装箱 {number} 仍有其他部门未解除的扣留：{holds}。",
        f"Container {number} still has open holds of other authorities: {holds}.",
    )


def _declaration_unknown_reason(number: str) -> Reason:
    return Reason(
        DECLARATION_UNKNOWN,
        f"集装箱 {number} 没有对应的报关单，请人工处理。",
        f"No declaration is known for container {number}; decide by hand.",
    )


def stale_sensor_reason(devices: tuple[str, ...]) -> Reason:
    names = ", ".join(devices)
    return Reason(
        SENSOR_STALE,
        f"本车道的设备 {names} 长时间无数据，请人工处理。",
        f"Lane sensor {names} has sent nothing recently; decide by hand.",
    )


def database_unavailable_reason() -> Reason:
    return Reason(
        DATABASE_UNAVAILABLE,
        "口岸系统数据库暂时不可用，请人工处理。",
        "Kouan's database is unreachable; decide by hand.",
    )


def unreadable_reason() -> Reason:
    return Reason(
        CONTAINER_UNREADABLE,
        "箱号无法识别，请人工核对后处理。",
        "The container number could not be read; check it and decide by hand.",
    )


def choose_declaration(
    candidates: tuple[Declaration, ...] | list[Declaration], visit: VisitState
) -> Declaration | None:
    """Pick the declaration a visit is matched to.

    The declaration number the truck presented wins when it lists the container.
    Otherwise the newest declaration that is not cancelled wins, and a cancelled one
    only when nothing else lists the container.
    """
    presented = {item.declaration_number for item in visit.observations if item.declaration_number}
    for declaration in candidates:
        if declaration.declaration_number in presented:
            return declaration
    for declaration in candidates:
        if declaration.status != "cancelled":
            return declaration
    return candidates[0] if candidates else None


def effective_observations(visit: VisitState) -> tuple[Observation, ...]:
    """Apply officers' corrections: drop passages moved to another container, fix seals."""
    moved = {
        item.corrects_event_id
        for item in visit.observations
        if item.kind == "read.correction" and item.correction_field == "container_number"
    }
    seal_fixes: dict[str, list[tuple[str, str]]] = {}
    for item in visit.observations:
        if (
            item.kind == "read.correction"
            and item.correction_field == "seal_number"
            and item.corrects_event_id
        ):
            seal_fixes.setdefault(item.corrects_event_id, []).append(
                (item.original_value or "", item.corrected_value or "")
            )

    effective = []
    for item in visit.observations:
        if item.kind == "read.correction" or item.event_id in moved:
            continue
        fixes = seal_fixes.get(item.event_id) or seal_fixes.get(item.corrects_event_id or "")
        if fixes:
            seals = list(item.seal_numbers)
            for original, corrected in fixes:
                seals = [corrected if seal == original else seal for seal in seals]
                if original not in item.seal_numbers and corrected not in seals:
                    seals.append(corrected)
            item = replace(item, seal_numbers=tuple(seals))
        effective.append(item)
    return tuple(effective)


def _facts(
    visit: VisitState,
    declaration: Declaration | None,
    declared_weights: Mapping[str, float | None],
    now: datetime,
) -> VisitFacts:
    return VisitFacts(
        visit.container_number, effective_observations(visit), declaration, declared_weights, now
    )


def summarise(visit: VisitState, declaration: Declaration | None) -> VisitSummary:
    """Derive a visit's latest-state columns and flags from its effective observations."""
    if not visit.observations:
        raise ValueError(f"Visit of {visit.container_number} has no observations to summarise")
    observations = effective_observations(visit)
    if not observations:
        return _void_summary(visit, declaration)

    entries = [item for item in observations if item.kind == "gate.passage" and item.direction == "in"]
    exits = [item for item in observations if item.kind == "gate.passage" and item.direction == "out"]
    scans = [item for item in observations if item.kind == "scan.result"]
    passages = entries + exits
    latest_passage = max(passages, key=lambda item: item.sort_key) if passages else None
    entry = entries[0] if entries else None
    exit_ = exits[-1] if exits else None

    seals = _latest_seals(observations)
    weights = [item.gross_weight_kg for item in entries if item.gross_weight_kg is not None]
    size_types = [item.size_type for item in observations if item.size_type]

    customs_status = declaration.status if declaration else "undeclared"
    status = _physical_status(entry is not None, bool(scans), exit_ is not None)
    flags = _flags(declaration, exit_ is not None)

    return VisitSummary(
        status=status,
        first_seen_at=observations[0].occurred_at,
        last_event_at=observations[-1].occurred_at,
        entered_at=entry.occurred_at if entry else None,
        scanned_at=scans[0].occurred_at if scans else None,
        exited_at=exit_.occurred_at if exit_ else None,
        entry_lane=entry.lane_id if entry else None,
        exit_lane=exit_.lane_id if exit_ else None,
        truck_plate=latest_passage.truck_plate if latest_passage else None,
        seal_numbers=seals,
        gross_weight_kg=weights[0] if weights else None,
        size_type=size_types[0] if size_types else None,
        declaration_number=declaration.declaration_number if declaration else None,
        customs_status=customs_status,
        flags=flags,
    )


def _void_summary(visit: VisitState, declaration: Declaration | None) -> VisitSummary:
    """Summary of a visit whose every read was corrected to another container number."""
    first, last = visit.observations[0], visit.observations[-1]
    return VisitSummary(
        status="void",
        first_seen_at=first.occurred_at,
        last_event_at=last.occurred_at,
        entered_at=None,
        scanned_at=None,
        exited_at=first.occurred_at,
        entry_lane=None,
        exit_lane=None,
        truck_plate=None,
        seal_numbers=(),
        gross_weight_kg=None,
        size_type=None,
        declaration_number=None,
        customs_status="undeclared",
        flags=("read_corrected_away",),
    )


def _latest_seals(observations: tuple[Observation, ...]) -> tuple[str, ...]:
    for item in reversed(observations):
        if item.kind == "gate.passage" and item.seal_numbers:
            return tuple(sorted(item.seal_numbers))
    return ()


def _physical_status(entered: bool, scanned: bool, exited: bool) -> str:
    if exited:
        return "exited"
    if scanned:
        return "scanned"
    if entered:
        return "entered"
    return "seen"


def _flags(declaration: Declaration | None, exited: bool) -> tuple[str, ...]:
    flags = []
    if declaration is None:
        flags.append("undeclared")
    elif release_blockers(declaration):
        flags.append("not_released")
    if exited and release_blockers(declaration):
        flags.append("exited_without_release")
    return tuple(flags)


__all__ = [
    "EXIT_WITHOUT_RELEASE",
    "Decision",
    "Outcome",
    "Reason",
    "choose_declaration",
    "combine",
    "decide",
    "evaluate",
    "summarise",
]
