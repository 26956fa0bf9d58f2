"""The checks customs expects at a gate, one function per rule code. Pure: no I/O.

Each visit rule looks at a visit's effective observations (after corrections, in
device order) and its matched declaration, and returns a :class:`Finding` when its
condition holds. The set of findings is a function of that input alone, so arrival
order never changes which alerts are open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from collector.correlation.model import Declaration, Observation

# Visit rule codes (subject_kind 'visit'), stable: the API, the dashboard and the
# simulator's grading use them.
UNDECLARED_CONTAINER = "undeclared_container"
DECLARATION_MISMATCH = "declaration_mismatch"
SEAL_MISMATCH = "seal_mismatch"
SEAL_MISSING = "seal_missing"
SEAL_EXTRA = "seal_extra"
ESEAL_ABNORMAL = "eseal_abnormal"
WEIGHT_OUT_OF_TOLERANCE = "weight_out_of_tolerance"
INSPECTION_NOT_SCANNED = "inspection_not_scanned"
SCAN_SUSPICIOUS = "scan_suspicious"
EXIT_WITHOUT_RELEASE = "exit_without_release"
DWELL_EXCEEDED = "dwell_exceeded"
# Passage rules (subject_kind 'passage', subject_id the event id).
CONTAINER_NUMBER_UNREADABLE = "container_number_unreadable"
OCR_LOW_CONFIDENCE = "ocr_low_confidence"

VISIT_RULES = (
    UNDECLARED_CONTAINER,
    DECLARATION_MISMATCH,
    SEAL_MISMATCH,
    SEAL_MISSING,
    SEAL_EXTRA,
    ESEAL_ABNORMAL,
    WEIGHT_OUT_OF_TOLERANCE,
    INSPECTION_NOT_SCANNED,
    SCAN_SUSPICIOUS,
    EXIT_WITHOUT_RELEASE,
    DWELL_EXCEEDED,
)
# Findings that stop a container at an exit lane. Dwell alone never holds a truck
# that is leaving, and an undeclared container makes the decision manual instead.
HOLD_RULES = frozenset(VISIT_RULES) - {DWELL_EXCEEDED, UNDECLARED_CONTAINER}


@dataclass(frozen=True)
class RuleSettings:
    """Tolerances and limits of the rules; CollectorSettings documents each one."""

    weight_tolerance_percent: float = 5.0
    weight_tolerance_kg: float = 500.0
    dwell_limit: timedelta = timedelta(hours=72)
    ocr_confidence_min: float = 0.6


@dataclass(frozen=True)
class Finding:
    """A rule whose condition holds, with the text people read and the evidence behind it."""

    rule_code: str
    severity: str
    message_zh: str
    message_en: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VisitFacts:
    """The input of the visit rules: effective observations, declaration and context."""

    container_number: str
    observations: tuple[Observation, ...]
    declaration: Declaration | None
    declared_weights: Mapping[str, float | None]
    now: datetime

    def of_kind(self, kind: str) -> list[Observation]:
        return [item for item in self.observations if item.kind == kind]

    def passages(self, direction: str | None = None) -> list[Observation]:
        return [
            item for item in self.of_kind("gate.passage") if direction is None or item.direction == direction
        ]


def evaluate_visit_rules(facts: VisitFacts, settings: RuleSettings) -> tuple[Finding, ...]:
    """Return the findings of every visit rule whose condition holds, in rule order.

    A visit whose every read was corrected to another container number has no
    observations left and raises nothing.
    """
    if not facts.observations:
        return ()
    found = []
    for check in VISIT_CHECKS:
        finding = check(facts, settings)
        if finding is not None:
            found.append(finding)
    return tuple(found)


def _event_ids(items: list[Observation]) -> list[str]:
    return [item.event_id for item in items]


def check_undeclared(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    if facts.declaration is not None:
        return None

    number = facts.container_number
    return Finding(
        UNDECLARED_CONTAINER,
        "warning",
        f"集装箱 {number} 未申报：没有报关单列有此箱。",
        f"Container {number} is not declared: no declaration lists it.",
        {"event_ids": _event_ids(list(facts.observations))},
    )


def check_declaration_mismatch(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    presented = [item for item in facts.passages() if item.declaration_number]
    if not presented or facts.declaration is None:
        return None
    latest = presented[-1]
    if latest.declaration_number == facts.declaration.declaration_number:
        return None

    number, shown, matched = (
        facts.container_number,
        latest.declaration_number,
        facts.declaration.declaration_number,
    )
    return Finding(
        DECLARATION_MISMATCH,
        "critical",
        f"集装箱 {number} 申报于报关单 {matched}，与车辆出示的报关单 {shown} 不符。",
        f"Container {number} is declared under {matched}, not under {shown} presented by the truck.",
        {"event_ids": [latest.event_id], "declared": matched, "observed": shown},
    )


def _observed_seals(facts: VisitFacts) -> tuple[Observation | None, tuple[str, ...]]:
    """Return the latest passage that read seals (or the latest passage) and its seals."""
    passages = facts.passages()
    for item in reversed(passages):
        if item.seal_numbers:
            return item, tuple(sorted(set(item.seal_numbers)))
    return (passages[-1] if passages else None), ()


def check_seals(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    """Compare the seals read at the gate with the declared ones (seal_mismatch/missing/extra)."""
    if facts.declaration is None:
        return None
    source, observed = _observed_seals(facts)
    if source is None:
        return None
    declared = tuple(sorted(set(facts.declaration.container.seal_numbers)))
    if set(observed) == set(declared):
        return None

    number = facts.container_number
    missing = sorted(set(declared) - set(observed))
    extra = sorted(set(observed) - set(declared))
    evidence = {
        "event_ids": [source.event_id],
        "declared": list(declared),
        "observed": list(observed),
        "missing": missing,
        "extra": extra,
    }
    if not extra:
        return Finding(
            SEAL_MISSING,
            "critical",
            f"集装箱 {number} 缺少申报的关封 {', '.join(missing)}。",
            f"Container {number} is missing declared seal {', '.join(missing)}.",
            evidence,
        )
    if not missing:
        return Finding(
            SEAL_EXTRA,
            "warning",
            f"集装箱 {number} 有未申报的关封 {', '.join(extra)}。",
            f"Container {number} carries undeclared seal {', '.join(extra)}.",
            evidence,
        )
    return Finding(
        SEAL_MISMATCH,
        "critical",
        f"集装箱 {number} 施封号不符：申报 {', '.join(declared)}，读取 {', '.join(observed)}。",
        f"Container {number} seal number differs: declared {', '.join(declared)}, "
        f"read {', '.join(observed)}.",
        evidence,
    )


def check_eseal(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    abnormal = [
        item
        for item in facts.of_kind("seal.status")
        if item.eseal
        and (item.eseal.get("opened") or item.eseal.get("tampered"))
        and not item.eseal.get("approved_opening")
    ]
    if not abnormal:
        return None

    number = facts.container_number
    seals = sorted({seal for item in abnormal for seal in item.seal_numbers})
    return Finding(
        ESEAL_ABNORMAL,
        "critical",
        f"集装箱 {number} 电子关锁异常：关锁 {', '.join(seals) or '?'} 在未经批准的情况下被打开或破坏。",
        f"Container {number} e-seal {', '.join(seals) or '?'} was opened or tampered "
        "outside an approved opening.",
        {"event_ids": _event_ids(abnormal), "observed": [item.eseal for item in abnormal]},
    )


def check_weight(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    """Compare the latest weighed passage with the declared gross weight of its load.

    The tolerance is the larger of ``weight_tolerance_percent`` of the declared weight
    and ``weight_tolerance_kg``; a difference exactly at the tolerance passes. A load of
    several containers is compared as a whole and skipped if any is undeclared.
    """
    if facts.declaration is None:
        return None
    weighed = [item for item in facts.passages() if item.gross_weight_kg is not None]
    if not weighed:
        return None
    latest = weighed[-1]
    load = latest.passage_containers or (facts.container_number,)
    weights = [facts.declared_weights.get(number) for number in load]
    if facts.container_number in load:
        weights[load.index(facts.container_number)] = facts.declaration.container.gross_weight_kg
    if any(weight is None for weight in weights):
        return None

    declared = round(sum(weight for weight in weights if weight is not None), 1)
    observed = float(latest.gross_weight_kg or 0.0)
    tolerance = max(declared * settings.weight_tolerance_percent / 100, settings.weight_tolerance_kg)
    difference = round(observed - declared, 1)
    if abs(difference) <= tolerance:
        return None

    number = facts.container_number
    return Finding(
        WEIGHT_OUT_OF_TOLERANCE,
        "warning",
        f"集装箱 {number} 重量差异超限：申报 {declared:.1f} kg，过磅 {observed:.1f} kg，"
        f"差 {difference:+.1f} kg（允许 ±{tolerance:.1f} kg）。",
        f"Container {number} gross weight off tolerance: declared {declared:.1f} kg, "
        f"weighed {observed:.1f} kg, difference {difference:+.1f} kg (allowed ±{tolerance:.1f} kg).",
        {
            "event_ids": [latest.event_id],
            "declared_kg": declared,
            "observed_kg": observed,
            "difference_kg": difference,
            "tolerance_kg": round(tolerance, 1),
            "containers": list(load),
        },
    )


def _valid_scans(facts: VisitFacts) -> list[Observation]:
    return [item for item in facts.of_kind("scan.result") if item.scan_result in ("clear", "suspicious")]


def check_inspection_not_scanned(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    """Inspection ordered, and the container reached an exit lane before any usable scan."""
    if facts.declaration is None or facts.declaration.status != "inspection_ordered":
        return None
    exits = facts.passages("out")
    if not exits:
        return None
    first_exit = exits[0]
    if any(item.sort_key < first_exit.sort_key for item in _valid_scans(facts)):
        return None

    number, declaration = facts.container_number, facts.declaration.declaration_number
    return Finding(
        INSPECTION_NOT_SCANNED,
        "critical",
        f"集装箱 {number} 布控未查验：报关单 {declaration} 已布控，但出卡前未经机检。",
        f"Container {number} was ordered for inspection under {declaration} "
        "but reached the exit without a scan.",
        {"event_ids": [first_exit.event_id], "declaration_status": facts.declaration.status},
    )


def check_scan_suspicious(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    scans = _valid_scans(facts)
    if not scans or scans[-1].scan_result != "suspicious":
        return None

    number = facts.container_number
    return Finding(
        SCAN_SUSPICIOUS,
        "critical",
        f"集装箱 {number} 机检异常：机检图像判读为可疑。",
        f"Container {number} scan result is suspicious.",
        {"event_ids": [scans[-1].event_id], "observed": scans[-1].scan_result},
    )


def release_blockers(declaration: Declaration | None) -> list[str]:
    """Return why a declaration does not let its container leave; empty when it does."""
    if declaration is None:
        return ["undeclared"]
    blockers = []
    if declaration.status != "released":
        blockers.append(declaration.status)
    blockers.extend(f"other_hold:{hold}" for hold in declaration.other_holds)
    return blockers


def check_exit_without_release(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    exits = facts.passages("out")
    blockers = release_blockers(facts.declaration)
    if not exits or not blockers:
        return None

    number = facts.container_number
    holds = list(facts.declaration.other_holds) if facts.declaration else []
    status = facts.declaration.status if facts.declaration else "undeclared"
    detail_zh = f"报关单状态 {status}" + (f"，其他部门未解除的扣留：{', '.join(holds)}" if holds else "")
    detail_en = f"declaration status {status}" + (
        f", open holds of other authorities: {', '.join(holds)}" if holds else ""
    )
    return Finding(
        EXIT_WITHOUT_RELEASE,
        "critical",
        f"集装箱 {number} 未放行出卡：{detail_zh}。",
        f"Container {number} attempted to exit without release: {detail_en}.",
        {
            "event_ids": _event_ids(exits),
            "declaration_status": status,
            "other_holds": holds,
        },
    )


def check_dwell(facts: VisitFacts, settings: RuleSettings) -> Finding | None:
    """Stay from the first gate-in to the exit (or to now) longer than ``dwell_limit``."""
    entries = facts.passages("in")
    if not entries:
        return None
    exits = facts.passages("out")
    until = exits[-1].occurred_at if exits else facts.now
    dwell = until - entries[0].occurred_at
    if dwell <= settings.dwell_limit:
        return None

    number = facts.container_number
    limit_hours = settings.dwell_limit.total_seconds() / 3600
    evidence: dict[str, Any] = {
        "event_ids": [entries[0].event_id],
        "entered_at": entries[0].occurred_at.isoformat(),
        "limit_hours": limit_hours,
    }
    if exits:
        evidence["exited_at"] = until.isoformat()
    return Finding(
        DWELL_EXCEEDED,
        "warning",
        f"集装箱 {number} 滞留超时：已滞留超过 {limit_hours:g} 小时。",
        f"Container {number} dwell exceeded {limit_hours:g} hours.",
        evidence,
    )


VISIT_CHECKS: tuple[Callable[[VisitFacts, RuleSettings], Finding | None], ...] = (
    check_undeclared,
    check_declaration_mismatch,
    check_seals,
    check_eseal,
    check_weight,
    check_inspection_not_scanned,
    check_scan_suspicious,
    check_exit_without_release,
    check_dwell,
)


def passage_findings(derived: dict[str, Any], settings: RuleSettings) -> tuple[Finding, ...]:
    """Return the passage rules that hold for one event's container reads.

    ``container_number_unreadable`` when a read is invalid (unreadable, wrong length or
    category, or a check digit that fails); ``ocr_low_confidence`` when a valid OCR
    read's confidence is below ``ocr_confidence_min``.
    """
    records = derived.get("containers", [])
    invalid = [record for record in records if not record.get("valid")]
    found = []
    if invalid:
        raws = ", ".join(str(record.get("raw")) for record in invalid)
        found.append(
            Finding(
                CONTAINER_NUMBER_UNREADABLE,
                "warning",
                f"箱号识别异常：读取值 {raws} 不是有效的箱号（{invalid[0].get('error')}）。",
                f"Container number unreadable: read {raws} is not a valid container number "
                f"({invalid[0].get('error')}).",
                {
                    "observed": [
                        {key: record.get(key) for key in ("raw", "error", "confidence")} for record in invalid
                    ]
                },
            )
        )

    low = [
        record
        for record in records
        if record.get("valid")
        and record.get("source") == "ocr"
        and record.get("confidence") is not None
        and record["confidence"] < settings.ocr_confidence_min
    ]
    if low:
        numbers = ", ".join(record["value"] for record in low)
        found.append(
            Finding(
                OCR_LOW_CONFIDENCE,
                "info",
                f"箱号 {numbers} 的识别置信度低于 {settings.ocr_confidence_min:g}，请人工核对。",
                f"Container number {numbers} was read with confidence below "
                f"{settings.ocr_confidence_min:g}; check it by eye.",
                {
                    "observed": [
                        {"value": record["value"], "confidence": record["confidence"]} for record in low
                    ],
                    "threshold": settings.ocr_confidence_min,
                },
            )
        )
    return tuple(found)
