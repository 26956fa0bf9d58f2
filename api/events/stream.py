"""The live stream: container visit status changes and alert changes as server-sent events.

Each stream polls the database every ``stream_poll_s`` seconds for visits and alerts
changed since its last poll. Change times are the writing transaction's start time,
so each poll looks back ``OVERLAP`` further and drops what it already sent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from anyio import to_thread
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api.alerts.service import ALERT_COLUMNS, with_message
from api.containers.service import VISIT_COLUMNS

logger = logging.getLogger(__name__)

OVERLAP = timedelta(seconds=5)
# Rows per kind and poll; a busier poll continues from its last row on the next.
POLL_LIMIT = 500


@dataclass
class _Mark:
    since: datetime
    overlap: bool = True
    sent: dict[Any, datetime] = field(default_factory=dict)


def _changes(
    pool: ConnectionPool, sites: list[str], visits: _Mark, alerts: _Mark, english: bool
) -> tuple[list[tuple[str, dict[str, Any]]], datetime]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        now_row = cur.execute("SELECT now() AS now").fetchone()
        assert now_row is not None
        visit_rows = cur.execute(
            f"SELECT {VISIT_COLUMNS}, updated_at AS changed_at FROM container_visits "
            "WHERE site_id = ANY(%s) AND updated_at > %s ORDER BY updated_at LIMIT %s",
            (sites, visits.since - OVERLAP if visits.overlap else visits.since, POLL_LIMIT),
        ).fetchall()
        alert_rows = cur.execute(
            f"SELECT {ALERT_COLUMNS}, greatest(last_raised_at, acknowledged_at, resolved_at) AS changed_at "
            "FROM alerts WHERE site_id = ANY(%s) "
            "AND greatest(last_raised_at, acknowledged_at, resolved_at) > %s ORDER BY changed_at LIMIT %s",
            (sites, alerts.since - OVERLAP if alerts.overlap else alerts.since, POLL_LIMIT),
        ).fetchall()

    out: list[tuple[str, dict[str, Any]]] = []
    for name, rows, mark, key in (
        ("visit", visit_rows, visits, "visit_id"),
        ("alert", alert_rows, alerts, "alert_id"),
    ):
        for row in rows:
            changed_at = row.pop("changed_at")
            if mark.sent.get(row[key]) == changed_at:
                continue
            mark.sent[row[key]] = changed_at
            out.append((name, with_message(row, english) if name == "alert" else row))
        _advance(mark, rows, now_row["now"])
    return out, now_row["now"]


def _advance(mark: _Mark, rows: list[dict[str, Any]], now: datetime) -> None:
    if len(rows) >= POLL_LIMIT:
        mark.since, mark.overlap = rows[-1]["changed_at"], False
    else:
        mark.since, mark.overlap = now, True
    horizon = mark.since - 2 * OVERLAP
    mark.sent = {key: moment for key, moment in mark.sent.items() if moment >= horizon}


def _database_now(pool: ConnectionPool) -> datetime:
    with pool.connection() as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def changes(
    pool: ConnectionPool, sites: list[str], english: bool, poll_s: float, max_seconds: float
) -> AsyncIterator[dict[str, str]]:
    """Yield server-sent events until ``max_seconds`` have passed."""
    started = time.monotonic()
    now = await to_thread.run_sync(_database_now, pool)
    visits, alerts = _Mark(now), _Mark(now)
    yield {"event": "ready", "data": json.dumps({"sites": sites, "since": now.isoformat()})}

    while time.monotonic() - started < max_seconds:
        await anyio.sleep(min(poll_s, max(0.0, max_seconds - (time.monotonic() - started))))
        found, _now = await to_thread.run_sync(_changes, pool, sites, visits, alerts, english)
        for name, row in found:
            yield {"event": name, "data": json.dumps(row, default=_default, ensure_ascii=False)}
    yield {"event": "end", "data": json.dumps({"reason": "max_seconds"})}
