"""Load, lock and save container visits and their alerts around the pure correlation core.

Every change to a container's visits happens under a transaction-scoped advisory
lock on (site, container), taken in sorted order, so several collector processes
and the API can update visits side by side without races or deadlocks. The caller
owns the transaction: visits, alerts and decisions commit with the events.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg import Connection
from psycopg.types.json import Jsonb

from collector.correlation.core import Decision, Outcome, choose_declaration, decide, evaluate
from collector.correlation.model import Declaration, DeclaredContainer, Observation, VisitState
from collector.correlation.rules import Finding, RuleSettings
from kouan.alerts import AlertSpec, clear_alerts, raise_alerts

logger = logging.getLogger(__name__)

# Closed visits older than this are not reopened by a late event: it starts a new one.
RECENT_VISIT_DAYS = 30


@dataclass
class StoredVisit:
    visit_id: int | None
    state: VisitState
    exited_at: datetime | None


@dataclass
class Correlation:
    """The conclusions of one :func:`apply_observations` call, for the caller to act on."""

    visits_written: int = 0
    alerts_raised: int = 0
    alerts_cleared: int = 0
    # Per asking passage (event id): the decision of each of its containers.
    decisions: dict[str, list[Decision]] = field(default_factory=lambda: defaultdict(list))


@functools.cache
def default_rule_settings() -> RuleSettings:
    """Rule settings from the environment (KOUAN_*), for callers such as the API."""
    from collector.settings import CollectorSettings

    return CollectorSettings().rule_settings()


def lock_containers(conn: Connection, site_id: str, container_numbers: Iterable[str]) -> None:
    keys = sorted({f"{site_id}/{number}" for number in container_numbers})
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) "
        "FROM (SELECT unnest(%s::text[]) AS key ORDER BY 1) AS sorted_keys",
        (keys,),
    )


def apply_observations(
    conn: Connection,
    site_id: str,
    observations: dict[str, list[Observation]],
    settings: RuleSettings | None = None,
    now: datetime | None = None,
    stale_sensors: dict[str, tuple[str, ...]] | None = None,
) -> Correlation:
    """Add observations to their containers' visits, save the visits and sync their alerts.

    ``observations`` maps a container number to what new events reported about it.
    ``stale_sensors`` maps an asking passage's event id to the lane devices that are
    stale. Decisions for asking passages are returned, not stored.
    """
    result = Correlation()
    if not observations:
        return result
    settings = settings or default_rule_settings()
    now = now or datetime.now(UTC)

    lock_containers(conn, site_id, observations)
    visits = _load_visits(conn, site_id, list(observations))
    # Keyed by identity: two new visits of different containers compare equal as values.
    touched: dict[int, StoredVisit] = {}
    asking: list[tuple[StoredVisit, Observation]] = []

    for number, items in observations.items():
        for observation in sorted(items, key=lambda item: item.sort_key):
            visit = _visit_for(visits[number], site_id, number, observation)
            visit.state = visit.state.with_observation(observation)
            touched.setdefault(id(visit), visit)
            if observation.direction == "out" and observation.decision_requested:
                asking.append((visit, observation))

    declarations, weights = _declarations_for(conn, site_id, list(touched.values()))
    outcomes = []
    for visit in touched.values():
        candidates = tuple(declarations.get(visit.state.container_number, []))
        outcomes.append((visit, evaluate(visit.state, candidates, None, settings, now, weights)))
    _save_visits(conn, outcomes)
    _sync_visit_alerts(conn, outcomes, result)

    for visit, passage in asking:
        candidates = tuple(declarations.get(visit.state.container_number, []))
        stale = (stale_sensors or {}).get(passage.event_id, ())
        decision = decide(visit.state, candidates, passage, settings, weights, stale)
        result.decisions[passage.event_id].append(decision)
    result.visits_written = len(touched)
    return result


def _declarations_for(
    conn: Connection, site_id: str, visits: list[StoredVisit]
) -> tuple[dict[str, list[Declaration]], dict[str, float | None]]:
    """Load the declarations of the visits' containers and of the containers they travelled with."""
    numbers = {visit.state.container_number for visit in visits}
    for visit in visits:
        for item in visit.state.observations:
            numbers.update(item.passage_containers)
    declarations = load_declarations(conn, site_id, sorted(numbers))

    weights: dict[str, float | None] = {}
    for number in numbers:
        visit_state = VisitState(site_id, number)
        chosen = choose_declaration(declarations.get(number, []), visit_state)
        weights[number] = chosen.container.gross_weight_kg if chosen else None
    return declarations, weights


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
          AND (exited_at IS NULL OR exited_at > now() - make_interval(days => %s))
        """,
        (site_id, numbers, RECENT_VISIT_DAYS),
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
        ORDER BY d.declared_at DESC, d.declaration_number
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


VISIT_COLUMNS = (
    "site_id",
    "container_number",
    "declaration_number",
    "status",
    "customs_status",
    "declared",
    "released",
    "first_seen_at",
    "entered_at",
    "scanned_at",
    "exited_at",
    "last_event_at",
    "entry_lane",
    "exit_lane",
    "truck_plate",
    "seal_numbers",
    "gross_weight_kg",
    "size_type",
    "flags",
    "event_count",
    "state",
)
INSERT_VISIT_SQL = (
    f"INSERT INTO container_visits (visit_id, {', '.join(VISIT_COLUMNS)}) OVERRIDING SYSTEM VALUE "
    f"VALUES (%(visit_id)s, {', '.join('%(' + name + ')s' for name in VISIT_COLUMNS)})"
)
UPDATE_VISIT_SQL = (
    f"UPDATE container_visits SET {', '.join(f'{name} = %({name})s' for name in VISIT_COLUMNS)}, "
    "updated_at = now() WHERE visit_id = %(visit_id)s"
)


def _visit_row(outcome: Outcome) -> dict[str, object]:
    summary = outcome.summary
    return {
        "site_id": outcome.state.site_id,
        "container_number": outcome.state.container_number,
        "declaration_number": summary.declaration_number,
        "status": summary.status,
        "customs_status": summary.customs_status,
        "declared": outcome.declaration is not None,
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
        "event_count": len(outcome.state.observations),
        "state": Jsonb({"observations": [item.to_json() for item in outcome.state.observations]}),
    }


def _save_visits(conn: Connection, outcomes: list[tuple[StoredVisit, Outcome]]) -> None:
    """Insert new visits and update known ones, each set in one pipelined ``executemany``.

    New visits take ids drawn from the identity's sequence first, so their alerts can
    name them without a round trip per visit.
    """
    new = [visit for visit, _ in outcomes if visit.visit_id is None]
    if new:
        rows = conn.execute(
            "SELECT nextval(pg_get_serial_sequence('container_visits', 'visit_id')) "
            "FROM generate_series(1, %s)",
            (len(new),),
        ).fetchall()
        for visit, (visit_id,) in zip(new, rows, strict=True):
            visit.visit_id = visit_id

    new_ids = {id(visit) for visit in new}
    inserts, updates = [], []
    for visit, outcome in outcomes:
        row = {**_visit_row(outcome), "visit_id": visit.visit_id}
        (inserts if id(visit) in new_ids else updates).append(row)
        visit.state = outcome.state
        visit.exited_at = outcome.summary.exited_at
    with conn.cursor() as cursor:
        if inserts:
            cursor.executemany(INSERT_VISIT_SQL, inserts)
        if updates:
            cursor.executemany(UPDATE_VISIT_SQL, updates)


@dataclass(frozen=True)
class LatestAlert:
    status: str
    evidence: dict
    severity: str
    resolved_by: str | None


def latest_alerts(
    conn: Connection, subject_kind: str, subject_ids: list[str]
) -> dict[tuple[str, str], LatestAlert]:
    """Return the newest alert per (rule_code, subject_id) of these subjects."""
    if not subject_ids:
        return {}
    rows = conn.execute(
        """
        SELECT DISTINCT ON (rule_code, subject_id)
               rule_code, subject_id, status, evidence, severity, resolved_by
        FROM alerts WHERE subject_kind = %s AND subject_id = ANY(%s)
        ORDER BY rule_code, subject_id, alert_id DESC
        """,
        (subject_kind, subject_ids),
    ).fetchall()
    return {
        (code, subject): LatestAlert(status, evidence, severity, by)
        for code, subject, status, evidence, severity, by in rows
    }


def needs_raise(latest: LatestAlert | None, finding: Finding) -> bool:
    """Whether a finding changes the alert table.

    An unresolved alert with the same evidence is left alone, so unrelated events do
    not inflate ``occurrences``. An alert a person resolved is not reopened by the same
    evidence, only by new evidence.
    """
    if latest is None:
        return True
    same = latest.evidence == finding.evidence and latest.severity == finding.severity
    if latest.status != "resolved":
        return not same
    return not (same and latest.resolved_by is not None)


def _sync_visit_alerts(
    conn: Connection, outcomes: list[tuple[StoredVisit, Outcome]], result: Correlation
) -> None:
    subject_ids = [str(visit.visit_id) for visit, _ in outcomes]
    latest = latest_alerts(conn, "visit", subject_ids)
    raised: list[AlertSpec] = []
    cleared: list[tuple[str, str, str]] = []

    for visit, outcome in outcomes:
        subject = str(visit.visit_id)
        for finding in outcome.findings:
            if needs_raise(latest.get((finding.rule_code, subject)), finding):
                raised.append(_visit_alert(visit, outcome, finding))
        for code in outcome.cleared:
            previous = latest.get((code, subject))
            if previous is not None and previous.status != "resolved":
                cleared.append((code, "visit", subject))

    raise_alerts(conn, raised)
    clear_alerts(conn, cleared)
    result.alerts_raised += len(raised)
    result.alerts_cleared += len(cleared)


def _visit_alert(visit: StoredVisit, outcome: Outcome, finding: Finding) -> AlertSpec:
    lanes = [item.lane_id for item in outcome.state.observations if item.lane_id]
    return AlertSpec(
        site_id=outcome.state.site_id,
        rule_code=finding.rule_code,
        severity=finding.severity,
        subject_kind="visit",
        subject_id=str(visit.visit_id),
        message_zh=finding.message_zh,
        message_en=finding.message_en,
        evidence=finding.evidence,
        visit_id=visit.visit_id,
        container_number=outcome.state.container_number,
        declaration_number=outcome.summary.declaration_number,
        lane_id=lanes[-1] if lanes else None,
    )


def reevaluate_containers(
    conn: Connection,
    site_id: str,
    numbers: list[str],
    settings: RuleSettings | None = None,
    now: datetime | None = None,
) -> int:
    """Recompute the open and recent visits of these containers, e.g. after a declaration changed.

    Also used by the dwell sweep, with ``now`` the sweep's time.
    """
    if not numbers:
        return 0
    settings = settings or default_rule_settings()
    now = now or datetime.now(UTC)

    lock_containers(conn, site_id, numbers)
    visits = _load_visits(conn, site_id, numbers)
    stored = [visit for items in visits.values() for visit in items if visit.state.observations]
    declarations, weights = _declarations_for(conn, site_id, stored)
    outcomes = []
    for visit in stored:
        candidates = tuple(declarations.get(visit.state.container_number, []))
        outcomes.append((visit, evaluate(visit.state, candidates, None, settings, now, weights)))
    _save_visits(conn, outcomes)
    _sync_visit_alerts(conn, outcomes, Correlation())
    return len(outcomes)
