"""Raise and clear alerts: one unresolved alert per (rule, subject), repeats update it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertSpec:
    """An alert to raise; ``evidence`` holds event ids and declared and observed values."""

    site_id: str
    rule_code: str
    severity: str
    subject_kind: str
    subject_id: str
    message_zh: str
    message_en: str
    evidence: dict[str, Any] = field(default_factory=dict)
    visit_id: int | None = None
    container_number: str | None = None
    declaration_number: str | None = None
    device_id: str | None = None
    lane_id: str | None = None


RAISE_SQL = """
        INSERT INTO alerts (site_id, rule_code, severity, subject_kind, subject_id, visit_id,
                            container_number, declaration_number, device_id, lane_id,
                            message_zh, message_en, evidence)
        VALUES (%(site_id)s, %(rule_code)s, %(severity)s, %(subject_kind)s, %(subject_id)s, %(visit_id)s,
                %(container_number)s, %(declaration_number)s, %(device_id)s, %(lane_id)s,
                %(message_zh)s, %(message_en)s, %(evidence)s)
        ON CONFLICT (rule_code, subject_kind, subject_id) WHERE status <> 'resolved'
        DO UPDATE SET last_raised_at = now(), occurrences = alerts.occurrences + 1,
                      severity = EXCLUDED.severity, message_zh = EXCLUDED.message_zh,
                      message_en = EXCLUDED.message_en, evidence = EXCLUDED.evidence,
                      declaration_number = EXCLUDED.declaration_number
        RETURNING alert_id
        """


def _check_severity(spec: AlertSpec) -> None:
    if spec.severity not in SEVERITIES:
        raise ValueError(f"Alert severity {spec.severity!r} is not one of {', '.join(SEVERITIES)}")


def raise_alert(conn: Connection, spec: AlertSpec) -> int:
    """Open an alert, or update the unresolved one for the same rule and subject; return its id."""
    _check_severity(spec)

    row = conn.execute(RAISE_SQL, {**spec.__dict__, "evidence": Jsonb(spec.evidence)}).fetchone()
    assert row is not None
    return int(row[0])


def raise_alerts(conn: Connection, specs: list[AlertSpec]) -> None:
    """Raise many alerts in one pipelined round trip, as :func:`raise_alert` does one."""
    if not specs:
        return
    for spec in specs:
        _check_severity(spec)

    with conn.cursor() as cursor:
        cursor.executemany(RAISE_SQL, [{**spec.__dict__, "evidence": Jsonb(spec.evidence)} for spec in specs])


def clear_alerts(conn: Connection, subjects: list[tuple[str, str, str]]) -> None:
    """Resolve the unresolved alerts of these (rule_code, subject_kind, subject_id), as Kouan."""
    if not subjects:
        return

    conn.execute(
        """
        UPDATE alerts SET status = 'resolved', resolved_at = now(),
                          resolve_reason = 'condition no longer holds'
        WHERE (rule_code, subject_kind, subject_id) IN
              (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
          AND status <> 'resolved'
        """,
        (
            [rule for rule, _, _ in subjects],
            [kind for _, kind, _ in subjects],
            [subject for _, _, subject in subjects],
        ),
    )


def clear_alert(conn: Connection, rule_code: str, subject_kind: str, subject_id: str) -> int | None:
    """Resolve the unresolved alert whose condition no longer holds; return its id, if any.

    ``resolved_by`` stays null: Kouan cleared it, not a person.
    """
    row = conn.execute(
        """
        UPDATE alerts SET status = 'resolved', resolved_at = now(),
                          resolve_reason = 'condition no longer holds'
        WHERE rule_code = %s AND subject_kind = %s AND subject_id = %s AND status <> 'resolved'
        RETURNING alert_id
        """,
        (rule_code, subject_kind, subject_id),
    ).fetchone()
    return None if row is None else int(row[0])
