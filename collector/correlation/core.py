"""The pure correlation core: observations plus declaration in, visit summary out.

The summary is a function of the set of observations, sorted by the device's
``occurred_at`` and ``seq``, and of the declaration. Arrival order therefore never
changes a conclusion, and a redelivered event changes nothing.
"""

from __future__ import annotations

from collector.correlation.model import Declaration, VisitState, VisitSummary


def summarise(visit: VisitState, declaration: Declaration | None) -> VisitSummary:
    """Derive a visit's latest-state columns and flags."""
    observations = visit.observations
    if not observations:
        raise ValueError(f"Visit of {visit.container_number} has no observations to summarise")

    entries = [item for item in observations if item.kind == "gate.passage" and item.direction == "in"]
    exits = [item for item in observations if item.kind == "gate.passage" and item.direction == "out"]
    scans = [item for item in observations if item.kind == "scan.result"]
    passages = entries + exits
    latest_passage = max(passages, key=lambda item: item.sort_key) if passages else None
    entry = entries[0] if entries else None
    exit_ = exits[-1] if exits else None

    seals = _latest_seals(visit)
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


def _latest_seals(visit: VisitState) -> tuple[str, ...]:
    for item in reversed(visit.observations):
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
    elif declaration.status != "released":
        flags.append("not_released")
    if exited and (declaration is None or declaration.status != "released"):
        flags.append("exited_without_release")
    return tuple(flags)
