"""Alert reads and the human actions on alerts (acknowledge, resolve), each audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.actions import action_errors
from api.errors import NotFound
from api.pagination import decode_cursor, paginate
from api.security.auth import Principal
from collector.correlation import actions

ALERT_COLUMNS = (
    "alert_id, site_id, rule_code, severity, status, subject_kind, subject_id, visit_id, "
    "rtrim(container_number) AS container_number, rtrim(declaration_number) AS declaration_number, "
    "device_id, lane_id, message_zh, message_en, evidence, first_raised_at, last_raised_at, occurrences, "
    "acknowledged_by, acknowledged_at, acknowledge_reason, resolved_by, resolved_at, resolve_reason"
)
CURSOR_TAG = "alerts"


def with_message(row: dict[str, Any], english: bool) -> dict[str, Any]:
    row["message"] = row["message_en"] if english else row["message_zh"]
    return row


def list_alerts(
    conn: Connection,
    sites: list[str],
    english: bool,
    *,
    status: str | None,
    rule_code: str | None,
    container_number: str | None,
    lane: str | None,
    device: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    after = decode_cursor(CURSOR_TAG, cursor, (int,))
    clauses = ["site_id = ANY(%(sites)s)"]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    for column, value in (
        ("status", status),
        ("rule_code", rule_code),
        ("container_number", container_number),
        ("lane_id", lane),
        ("device_id", device),
    ):
        if value is not None:
            clauses.append(f"{column} = %({column})s")
            params[column] = value
    if since is not None:
        clauses.append("last_raised_at >= %(since)s")
        params["since"] = since
    if after is not None:
        clauses.append("alert_id < %(after)s")
        params["after"] = after[0]

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(clauses)} "
            "ORDER BY alert_id DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    page = paginate(rows, limit, CURSOR_TAG, lambda row: [row["alert_id"]])
    page["items"] = [with_message(row, english) for row in page["items"]]
    return page


def alerts_of_visits(conn: Connection, visit_ids: list[int], english: bool) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE visit_id = ANY(%s) ORDER BY alert_id LIMIT 500",
            (visit_ids,),
        ).fetchall()
    return [with_message(row, english) for row in rows]


def get_alert(
    conn: Connection, principal: Principal, alert_id: int, english: bool, lock: bool = False
) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = %s" + (" FOR UPDATE" if lock else ""),
            (alert_id,),
        ).fetchone()
    if row is None or not principal.sees(row["site_id"]):
        raise NotFound("Alert", "告警", str(alert_id))
    return with_message(row, english)


def acknowledge(conn: Connection, principal: Principal, alert_id: int, reason: str, english: bool) -> dict:
    """Mark an open alert acknowledged by the caller, audited in the same transaction."""
    with conn.transaction():
        get_alert(conn, principal, alert_id, english, lock=True)
        with action_errors("Alert", "告警", str(alert_id)):
            actions.acknowledge_alert(conn, alert_id, principal.actor, reason)
    return get_alert(conn, principal, alert_id, english)


def resolve(conn: Connection, principal: Principal, alert_id: int, reason: str, english: bool) -> dict:
    """Resolve an open or acknowledged alert with the caller's reason, audited."""
    with conn.transaction():
        get_alert(conn, principal, alert_id, english, lock=True)
        with action_errors("Alert", "告警", str(alert_id)):
            actions.resolve_alert(conn, alert_id, principal.actor, reason)
    return get_alert(conn, principal, alert_id, english)
