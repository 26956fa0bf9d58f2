"""Devices and lanes: health, last seen, reported outbox depth, clock offset, lane mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.errors import NotFound
from api.pagination import decode_cursor, paginate

# A device silent for longer than this is reported stale: four missed status messages
# at the edge agent's default interval of 15 s (EdgeSettings.status_interval_s).
STALE_AFTER = timedelta(seconds=60)
DEVICE_COLUMNS = (
    "device_id, site_id, lane_id, kind, enabled, last_seen_at, last_seq, seq_gaps, clock_offset_ms, "
    "status, status_at"
)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    status = row["status"] if isinstance(row["status"], dict) else None
    state = status.get("state") if status else None
    latest = max((moment for moment in (row["last_seen_at"], row["status_at"]) if moment), default=None)

    if not row["enabled"]:
        health = "disabled"
    elif latest is None:
        health = "never_seen"
    elif state == "offline":
        health = "offline"
    elif now - latest > STALE_AFTER:
        health = "stale"
    else:
        health = "ok"

    return {
        **row,
        "status": status,
        "health": health,
        "online": None if state is None else state == "online",
        "outbox_depth": _int_or_none(status.get("outbox_depth")) if status else None,
        "outbox_capacity": _int_or_none(status.get("outbox_capacity")) if status else None,
    }


def list_devices(
    conn: Connection, sites: list[str], *, lane: str | None, kind: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    after = decode_cursor("devices", cursor, (str,))
    clauses = ["site_id = ANY(%(sites)s)"]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    if lane is not None:
        clauses.append("lane_id = %(lane)s")
        params["lane"] = lane
    if kind is not None:
        clauses.append("kind = %(kind)s")
        params["kind"] = kind
    if after is not None:
        clauses.append("device_id > %(after)s")
        params["after"] = after[0]

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {' AND '.join(clauses)} "
            "ORDER BY device_id LIMIT %(limit)s",
            params,
        ).fetchall()
    now = datetime.now(UTC)
    page = paginate(rows, limit, "devices", lambda row: [row["device_id"]])
    page["items"] = [describe(row, now) for row in page["items"]]
    return page


def get_device(conn: Connection, sites: list[str], device_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = %s AND site_id = ANY(%s)",
            (device_id, sites),
        ).fetchone()
    if row is None:
        raise NotFound("Device", "设备", device_id)
    return describe(row, datetime.now(UTC))


def list_lanes(conn: Connection, sites: list[str], limit: int, cursor: str | None) -> dict[str, Any]:
    after = decode_cursor("lanes", cursor, (str, str))
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1, "stale": datetime.now(UTC) - STALE_AFTER}
    where = "l.site_id = ANY(%(sites)s)"
    if after is not None:
        where += " AND (l.site_id, l.lane_id) > (%(after_site)s, %(after_lane)s)"
        params.update(after_site=after[0], after_lane=after[1])

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""
            SELECT l.site_id, l.lane_id, l.direction, l.mode, l.mode_reason, l.updated_at,
                   (SELECT count(*) FROM devices d WHERE d.site_id = l.site_id AND d.lane_id = l.lane_id)
                       AS devices,
                   (SELECT count(*) FROM devices d WHERE d.site_id = l.site_id AND d.lane_id = l.lane_id
                       AND d.enabled AND greatest(d.last_seen_at, d.status_at) > %(stale)s
                       AND coalesce(d.status ->> 'state', 'online') <> 'offline') AS devices_ok,
                   (SELECT count(*) FROM alerts a WHERE a.site_id = l.site_id AND a.lane_id = l.lane_id
                       AND a.status <> 'resolved') AS open_alerts
            FROM lanes l WHERE {where}
            ORDER BY l.site_id, l.lane_id LIMIT %(limit)s
            """,
            params,
        ).fetchall()
    return paginate(rows, limit, "lanes", lambda row: [row["site_id"], row["lane_id"]])
