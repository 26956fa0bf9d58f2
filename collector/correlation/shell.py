"""Load, lock and save container visits around the pure correlation core.

Every change to a container's visits happens under a transaction-scoped advisory
lock on (site, container), taken in sorted order, so several collector processes
and the API can update visits side by side without races or deadlocks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg import Connection
from psycopg.types.json import Jsonb

from collector.correlation.core import summarise
from collector.correlation.model import Declaration, DeclaredContainer, Observation, VisitState

logger = logging.getLogger(__name__)


@dataclass
class StoredVisit:
    visit_id: int | None
    state: VisitState
    exited_at: datetime | None


def lock_containers(conn: Connection, site_id: str, container_numbers: Iterable[str]) -> None:
    for number in sorted(set(container_numbers)):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{site_id}/{number}",))


def apply_observations(conn: Connection, site_id: str, observations: dict[str, list[Observation]]) -> int:
    """Add observations to their containers' visits and save the new summaries.

    ``observations`` maps container number to what new events said about it. Returns
    the number of visits written.
    """
    if not observations:
        return 0

    lock_containers(conn, site_id, observations)
    visits = _load_visits(conn, site_id, list(observations))
    declarations = load_declarations(conn, site_id, list(observations))
    touched: list[StoredVisit] = []

    for number, items in observations.items():
        for observation in sorted(items, key=lambda item: item.sort_key):
            visit = _visit_for(visits[number], site_id, number, observation)
            visit.state = visit.state.with_observation(observation)
            if visit not in touched:
                touched.append(visit)

    for visit in touched:
        declaration = choose_declaration(declarations.get(visit.state.container_number, []), visit.state)
        _save_visit(conn, visit, declaration)
    return len(touched)


def _visit_for(
    candidates: list[StoredVisit], site_id: str, number: str, observation: Observation
) -> StoredVisit:
    """Pick the visit an observation belongs to, creating one when none fits.

    A closed visit takes an observation that happened before its exit (a late or
    shuffled arrival); the earliest such visit wins. Otherwise the open visit does.
    """
    closed = sorted(
        (visit for visit in candidates if visit.exited_at is not None),
        key=lambda visit: visit.exited_at,  # type: ignore[arg-type, return-value]
    )
    for visit in closed:
        assert visit.exited_at is not None
        if observation.occurred_at <= visit.exited_at:
            return visit

    for visit in candidates:
        if visit.exited_at is None:
            return visit

    created = StoredVisit(None, VisitState(site_id, number), None)
    candidates.append(created)
    return created


def _load_visits(conn: Connection, site_id: str, numbers: list[str]) -> dict[str, list[StoredVisit]]:
    rows = conn.execute(
        """
        SELECT visit_id, container_number, state, exited_at
        FROM container_visits
        WHERE site_id = %s AND container_number = ANY(%s)
          AND (exited_at IS NULL OR exited_at > now() - interval '30 days')
        """,
        (site_id, numbers),
    ).fetchall()

    visits: dict[str, list[StoredVisit]] = defaultdict(list)
    for visit_id, number, state, exited_at in rows:
        observations = tuple(Observation.from_json(item) for item in state.get("observations", []))
        visits[number.strip()].append(
            StoredVisit(visit_id, VisitState(site_id, number.strip(), observations), exited_at)
        )
    for number in numbers:
        visits.setdefault(number, [])
    return visits


def load_declarations(conn: Connection, site_id: str, numbers: list[str]) -> dict[str, list[Declaration]]:
    """Return, per container number, the site's declarations that list it, newest first."""
    rows = conn.execute(
        """
        SELECT dc.container_number, d.declaration_number, d.status, d.direction,
               dc.seal_numbers, dc.gross_weight_kg, dc.size_type, d.other_holds
        FROM declaration_containers dc
        JOIN declarations d USING (declaration_number)
        WHERE d.site_id = %s AND dc.container_number = ANY(%s)
        ORDER BY d.declared_at DESC
        """,
        (site_id, numbers),
    ).fetchall()

    found: dict[str, list[Declaration]] = defaultdict(list)
    for number, decl_number, status, direction, seals, weight, size_type, other_holds in rows:
        container = DeclaredContainer(
            number.strip(), tuple(seals), float(weight) if weight is not None else None, size_type
        )
        found[number.strip()].append(
            Declaration(decl_number, status, direction, container, tuple(other_holds))
        )
    return found


def choose_declaration(candidates: list[Declaration], visit: VisitState) -> Declaration | None:
    """Pick the declaration a visit is matched to.

    The declaration number the truck presented wins; otherwise the newest
    declaration that is not cancelled.
    """
    presented = {item.declaration_number for item in visit.observations if item.declaration_number}
    for declaration in candidates:
        if declaration.declaration_number in presented:
            return declaration
    for declaration in candidates:
        if declaration.status != "cancelled":
            return declaration
    return None


def _save_visit(conn: Connection, visit: StoredVisit, declaration: Declaration | None) -> None:
    summary = summarise(visit.state, declaration)
    state = {"observations": [item.to_json() for item in visit.state.observations]}
    values = {
        "site_id": visit.state.site_id,
        "container_number": visit.state.container_number,
        "declaration_number": summary.declaration_number,
        "status": summary.status,
        "customs_status": summary.customs_status,
        "declared": declaration is not None,
        "released": summary.customs_status == "released",
        "first_seen_at": summary.first_seen_at,
        "entered_at": summary.entered_at,
        "scanned_at": summary.scanned_at,
        "exited_at": summary.exited_at,
        "last_event_at": summary.last_event_at,
        "entry_lane": summary.entry_lane,
        "exit_lane": summary.exit_lane,
        "truck_plate": summary.truck_plate,
        "seal_numbers": list(summary.seal_numbers),
        "gross_weight_kg": summary.gross_weight_kg,
        "size_type": summary.size_type,
        "flags": list(summary.flags),
        "event_count": len(visit.state.observations),
        "state": Jsonb(state),
    }
    columns = list(values)

    if visit.visit_id is None:
        row = conn.execute(
            f"INSERT INTO container_visits ({', '.join(columns)}) "
            f"VALUES ({', '.join('%(' + name + ')s' for name in columns)}) RETURNING visit_id",
            values,
        ).fetchone()
        assert row is not None
        visit.visit_id = row[0]
    else:
        assignments = ", ".join(f"{name} = %({name})s" for name in columns)
        conn.execute(
            f"UPDATE container_visits SET {assignments}, updated_at = now() WHERE visit_id = %(visit_id)s",
            {**values, "visit_id": visit.visit_id},
        )
    visit.exited_at = summary.exited_at


def reevaluate_containers(conn: Connection, site_id: str, numbers: list[str]) -> int:
    """Recompute the open and recent visits of these containers, e.g. after a declaration changed."""
    if not numbers:
        return 0

    lock_containers(conn, site_id, numbers)
    visits = _load_visits(conn, site_id, numbers)
    declarations = load_declarations(conn, site_id, numbers)
    count = 0
    for number, stored in visits.items():
        for visit in stored:
            if not visit.state.observations:
                continue
            declaration = choose_declaration(declarations.get(number, []), visit.state)
            _save_visit(conn, visit, declaration)
            count += 1
    return count
