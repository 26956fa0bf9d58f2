"""Gate decisions: which passages ask, what the lane is told, and the gate_decisions record.

An exit lane's ``gate.passage`` with ``decision_requested: true`` asks. The decision is
made by the pure core (``collector.correlation.core.decide``) in the transaction that
stores the passage, recorded in ``gate_decisions`` there, and published to the lane's
``commands`` topic after the commit. ``manual`` is sent when Kouan cannot decide
safely: no declaration, a stale sensor of the lane, an unreadable container number,
or a database that cannot be reached (that last one is sent before anything is
stored, and recorded with the passage once the database is back).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from collector.correlation.core import (
    SENSOR_STALE,
    Decision,
    Reason,
    database_unavailable_reason,
)
from kouan.contract import Command


def asks_for_decision(kind: str, payload: dict[str, Any]) -> bool:
    """Whether an event is an exit passage that asks the lane's decision."""
    return (
        kind == "gate.passage"
        and payload.get("direction") == "out"
        and payload.get("decision_requested") is True
    )


def peek_decision_request(raw: bytes) -> bool:
    """Cheaply tell, before full inspection, whether a message is an asking exit passage.

    Used by the MQTT thread to route the message to the decision path. A wrong guess
    costs only latency: both paths inspect and store every event the same way.
    """
    # Every passage carries the decision_requested key, so entry passages are ruled
    # out by their direction before any JSON is parsed on the MQTT network thread.
    if b"decision_requested" not in raw or b'"out"' not in raw:
        return False
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(document, dict) or not isinstance(document.get("payload"), dict):
        return False
    return asks_for_decision(str(document.get("kind")), document["payload"])


def make_command(
    device_id: str,
    lane_id: str,
    passage_id: str,
    container_numbers: list[str],
    decision: Decision,
    issued_at: datetime,
    valid_s: float,
) -> Command:
    return Command(
        command_id=uuid.uuid4(),
        kind="gate.decision",
        device_id=device_id,
        lane_id=lane_id,
        passage_id=passage_id,
        container_numbers=container_numbers,
        decision=decision.decision,  # type: ignore[arg-type]
        reasons=[reason.to_json() for reason in decision.reasons],
        issued_at=issued_at,
        valid_until=issued_at + timedelta(seconds=valid_s),
    )


def database_unavailable_command(
    device_id: str, payload: dict[str, Any], issued_at: datetime, valid_s: float
) -> Command:
    """Build the manual decision sent when the passage cannot be stored or decided."""
    return make_command(
        device_id,
        str(payload.get("lane_id", "")),
        str(payload.get("passage_id", "")),
        [],
        Decision("manual", (database_unavailable_reason(),)),
        issued_at,
        valid_s,
    )


def stale_lane_sensors(
    conn: Connection, site_id: str, lane_id: str, asking_device: str, stale_s: float, now: datetime
) -> tuple[str, ...]:
    """Return the other enabled devices of the lane whose latest event or status is too old.

    A device that never reported counts as stale once it has been registered longer
    than the limit.
    """
    rows = conn.execute(
        """
        SELECT device_id FROM devices
        WHERE site_id = %(site)s AND lane_id = %(lane)s AND enabled AND device_id <> %(device)s
          AND coalesce(greatest(last_seen_at, status_at), created_at)
              < %(now)s - make_interval(secs => %(stale)s)
        ORDER BY device_id
        """,
        {"site": site_id, "lane": lane_id, "device": asking_device, "now": now, "stale": stale_s},
    ).fetchall()
    return tuple(device_id for (device_id,) in rows)


def record_decisions(
    conn: Connection,
    site_id: str,
    decisions: list[tuple[str, Command]],
    issued_by: str | None = None,
    overrides: uuid.UUID | None = None,
) -> None:
    """Insert decisions, each with the event id of the passage that asked, and set lane modes."""
    if not decisions:
        return
    _record_lane_modes(conn, site_id, [command for _, command in decisions])
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO gate_decisions (command_id, site_id, lane_id, device_id, passage_id, event_id,
                container_numbers, decision, reasons, issued_at, valid_until, overrides, issued_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    command.command_id,
                    site_id,
                    command.lane_id,
                    command.device_id,
                    command.passage_id,
                    event_id,
                    command.container_numbers,
                    command.decision,
                    Jsonb(command.reasons),
                    command.issued_at,
                    command.valid_until,
                    overrides,
                    issued_by,
                )
                for event_id, command in decisions
            ],
        )


def stored_commands(conn: Connection, event_ids: list[str]) -> dict[str, Command]:
    """Return the decision already recorded for each of these passage events, if any."""
    if not event_ids:
        return {}
    rows = conn.execute(
        """
        SELECT event_id::text, command_id, device_id, lane_id, passage_id, container_numbers,
               decision, reasons, issued_at, valid_until
        FROM gate_decisions WHERE event_id = ANY(%s::uuid[]) AND overrides IS NULL
        """,
        (event_ids,),
    ).fetchall()
    return {row[0]: command_of_row(row[1:]) for row in rows}


def command_of_row(row: tuple[Any, ...]) -> Command:
    command_id, device_id, lane_id, passage_id, numbers, decision, reasons, issued_at, valid_until = row
    return Command(
        command_id=command_id,
        kind="gate.decision",
        device_id=device_id,
        lane_id=lane_id,
        passage_id=passage_id,
        container_numbers=list(numbers),
        decision=decision,
        reasons=reasons,
        issued_at=issued_at,
        valid_until=valid_until,
    )


__all__ = ["Reason", "asks_for_decision", "make_command", "peek_decision_request"]


# Reasons that concern the lane itself rather than one container: while they hold,
# the lane works by hand and supervisors see why. A database outage is left out:
# its manual decision is recorded only once the database is back.
LANE_MANUAL_REASONS = frozenset({SENSOR_STALE})


def _record_lane_modes(conn: Connection, site_id: str, commands: list[Command]) -> None:
    """Put a lane in manual mode on a lane-level manual decision, back to automatic otherwise."""
    for command in commands:
        lane_reasons = [reason for reason in command.reasons if reason.get("code") in LANE_MANUAL_REASONS]
        mode = "manual" if command.decision == "manual" and lane_reasons else "automatic"
        reason = "; ".join(item["message_zh"] for item in lane_reasons) or None
        conn.execute(
            """
            UPDATE lanes SET mode = %s, mode_reason = %s, updated_at = %s
            WHERE site_id = %s AND lane_id = %s AND (mode <> %s OR mode_reason IS DISTINCT FROM %s)
            """,
            (mode, reason, command.issued_at, site_id, command.lane_id, mode, reason),
        )
