"""Gate decision history and the customs officer's override of a hold."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.actions import action_errors
from api.errors import NotFound
from api.pagination import decode_cursor, paginate
from api.security.auth import Principal
from collector.correlation import actions
from kouan.contract import Command

CURSOR_TAG = "decisions"
DECISION_COLUMNS = (
    "d.command_id, d.site_id, d.lane_id, d.device_id, d.passage_id, d.event_id, d.container_numbers, "
    "d.decision, d.reasons, d.issued_at, d.valid_until, d.overrides, d.issued_by, "
    "(SELECT o.command_id FROM gate_decisions o WHERE o.overrides = d.command_id LIMIT 1) AS overridden_by"
)


def _localise(row: dict[str, Any], english: bool) -> dict[str, Any]:
    reasons = []
    for reason in row["reasons"] or []:
        message_zh = reason.get("message_zh", "")
        message_en = reason.get("message_en", "")
        reasons.append(
            {
                "code": reason.get("code", ""),
                "message": message_en if english else message_zh,
                "message_zh": message_zh,
                "message_en": message_en,
            }
        )
    row["reasons"] = reasons
    return row


def list_decisions(
    conn: Connection,
    sites: list[str],
    english: bool,
    *,
    lane: str | None,
    decision: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    after = decode_cursor(CURSOR_TAG, cursor, (datetime, str))
    clauses = ["d.site_id = ANY(%(sites)s)"]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    if lane is not None:
        clauses.append("d.lane_id = %(lane)s")
        params["lane"] = lane
    if decision is not None:
        clauses.append("d.decision = %(decision)s")
        params["decision"] = decision
    if since is not None:
        clauses.append("d.issued_at >= %(since)s")
        params["since"] = since
    if until is not None:
        clauses.append("d.issued_at < %(until)s")
        params["until"] = until
    if after is not None:
        clauses.append("(d.issued_at, d.command_id::text) < (%(after_at)s, %(after_id)s)")
        params.update(after_at=after[0], after_id=after[1])

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {DECISION_COLUMNS} FROM gate_decisions d WHERE {' AND '.join(clauses)} "
            "ORDER BY d.issued_at DESC, d.command_id::text DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    page = paginate(rows, limit, CURSOR_TAG, lambda row: [row["issued_at"], str(row["command_id"])])
    page["items"] = [_localise(row, english) for row in page["items"]]
    return page


def get_decision(
    conn: Connection, principal: Principal, command_id: uuid.UUID, english: bool, lock: bool = False
) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {DECISION_COLUMNS} FROM gate_decisions d WHERE d.command_id = %s"
            + (" FOR UPDATE OF d" if lock else ""),
            (command_id,),
        ).fetchone()
    if row is None or not principal.sees(row["site_id"]):
        raise NotFound("Gate decision", "卡口指令", str(command_id))
    return _localise(row, english)


def override(
    conn: Connection, principal: Principal, command_id: uuid.UUID, reason: str, valid_s: int, english: bool
) -> tuple[dict[str, Any], Command]:
    """Store a release that overrides a hold or manual decision, audited in the same transaction."""
    with conn.transaction():
        get_decision(conn, principal, command_id, english, lock=True)
        with action_errors("Gate decision", "卡口指令", str(command_id)):
            command = actions.override_decision(conn, command_id, principal.actor, reason, valid_s)
    return get_decision(conn, principal, command.command_id, english), command
