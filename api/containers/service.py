"""Container search, current status and timeline, limited to the caller's sites."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.alerts.service import alerts_of_visits
from api.errors import ApiError, NotFound
from api.pagination import decode_cursor, paginate
from kouan import identifiers

VISIT_COLUMNS = (
    "visit_id, site_id, rtrim(container_number) AS container_number, status, customs_status, declared, "
    "released, first_seen_at, entered_at, scanned_at, exited_at, last_event_at, entry_lane, exit_lane, "
    "truck_plate, seal_numbers, gross_weight_kg::float8 AS gross_weight_kg, size_type, flags, event_count, "
    "rtrim(declaration_number) AS declaration_number"
)
SEARCH_TAG = "containers"
TIMELINE_TAG = "timeline"
# Maximum timeline window of one request. The events hypertable has one chunk per
# day, so this bounds the chunks a query touches.
MAX_TIMELINE_DAYS = 31


def parse_number(raw: str) -> identifiers.ContainerNumber:
    try:
        return identifiers.parse_container_number(raw, repair=False)
    except identifiers.ContainerNumberError as exc:
        raise ApiError(
            422,
            "invalid_container_number",
            exc.message_en,
            exc.message_zh,
            [{"field": "container_number", "value": exc.value[:32], "problem": exc.code}],
        ) from exc


def search(
    conn: Connection,
    sites: list[str],
    *,
    lane: str | None,
    status: str | None,
    customs_status: str | None,
    flag: str | None,
    number_prefix: str | None,
    declaration_number: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Visits matching every filter given, latest activity first."""
    after = decode_cursor(SEARCH_TAG, cursor, (datetime, int))
    clauses = ["site_id = ANY(%(sites)s)"]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    if lane is not None:
        clauses.append("(entry_lane = %(lane)s OR exit_lane = %(lane)s)")
        params["lane"] = lane
    for column, value in (("status", status), ("customs_status", customs_status)):
        if value is not None:
            clauses.append(f"{column} = %({column})s")
            params[column] = value
    if flag is not None:
        clauses.append("flags @> ARRAY[%(flag)s]::text[]")
        params["flag"] = flag
    if number_prefix is not None:
        clauses.append("container_number LIKE %(prefix)s")
        params["prefix"] = number_prefix + "%"
    if declaration_number is not None:
        clauses.append("declaration_number = %(declaration)s")
        params["declaration"] = declaration_number
    if since is not None:
        clauses.append("last_event_at >= %(since)s")
        params["since"] = since
    if until is not None:
        clauses.append("last_event_at < %(until)s")
        params["until"] = until
    if after is not None:
        clauses.append("(last_event_at, visit_id) < (%(after_at)s, %(after_id)s)")
        params.update(after_at=after[0], after_id=after[1])

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {VISIT_COLUMNS} FROM container_visits WHERE {' AND '.join(clauses)} "
            "ORDER BY last_event_at DESC, visit_id DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    return paginate(rows, limit, SEARCH_TAG, lambda row: [row["last_event_at"], row["visit_id"]])


def get_container(conn: Connection, sites: list[str], raw: str) -> dict[str, Any]:
    number = parse_number(raw)
    # One round trip: the latest visit, how many visits there are, and its declaration.
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            f"""
            SELECT {VISIT_COLUMNS}, count(*) OVER () AS visits, declaration.*
            FROM container_visits
            LEFT JOIN LATERAL (
                SELECT rtrim(d.declaration_number) AS declared_number, d.status AS declared_status,
                       d.direction AS declared_direction
                FROM declarations d
                WHERE d.declaration_number = container_visits.declaration_number
                  AND d.site_id = ANY(%(sites)s)
                LIMIT 1
            ) AS declaration ON true
            WHERE container_number = %(number)s AND site_id = ANY(%(sites)s)
            ORDER BY first_seen_at DESC LIMIT 1
            """,
            {"number": number.value, "sites": sites},
        ).fetchone()
    if row is None:
        raise NotFound("Container", "集装箱", number.value)

    visits = row.pop("visits")
    declaration = {
        "declaration_number": row.pop("declared_number"),
        "status": row.pop("declared_status"),
        "direction": row.pop("declared_direction"),
    }
    return {
        "container_number": number.value,
        "owner_code": number.owner_code,
        "category": number.category,
        "current": row,
        "declaration": declaration if declaration["declaration_number"] is not None else None,
        "previous_visits": visits - 1,
    }


def _window(
    visits: list[dict[str, Any]], visit_id: int | None, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """Return the [since, until) window: the one asked for, else the chosen or latest visit's."""
    if since is None or until is None:
        chosen = (
            visits[0] if visit_id is None else next((v for v in visits if v["visit_id"] == visit_id), None)
        )
        if chosen is None:
            raise NotFound("Visit", "到港记录", str(visit_id))
        end = chosen["exited_at"] or chosen["last_event_at"]
        since = since or chosen["first_seen_at"]
        until = until or max(end, chosen["last_event_at"]) + timedelta(microseconds=1)

    if until <= since:
        raise ApiError(
            422, "invalid_time_range", "until must be later than since.", "结束时间必须晚于开始时间。"
        )
    if until - since > timedelta(days=MAX_TIMELINE_DAYS):
        raise ApiError(
            422,
            "time_range_too_long",
            f"The time range is longer than {MAX_TIMELINE_DAYS} days; narrow since and until.",
            f"时间范围超过 {MAX_TIMELINE_DAYS} 天，请缩小 since 与 until 的范围。",
        )
    return since, until


def timeline(
    conn: Connection,
    sites: list[str],
    raw: str,
    english: bool,
    *,
    visit_id: int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """List every event of a container in a bounded window, with its reads' provenance and the alerts."""
    number = parse_number(raw)
    after = decode_cursor(TIMELINE_TAG, cursor, (datetime, str, int))
    with conn.cursor(row_factory=dict_row) as cur:
        visits = cur.execute(
            f"SELECT {VISIT_COLUMNS} FROM container_visits WHERE container_number = %s AND site_id = ANY(%s) "
            "ORDER BY first_seen_at DESC LIMIT 100",
            (number.value, sites),
        ).fetchall()
    if not visits:
        raise NotFound("Container", "集装箱", number.value)
    since, until = _window(visits, visit_id, since, until)

    clauses = [
        "site_id = ANY(%(sites)s)",
        "container_numbers @> ARRAY[%(number)s]::text[]",
        "occurred_at >= %(since)s",
        "occurred_at < %(until)s",
    ]
    params: dict[str, Any] = {
        "sites": sites,
        "number": number.value,
        "since": since,
        "until": until,
        "limit": limit + 1,
    }
    if after is not None:
        clauses.append("(occurred_at, device_id, seq) > (%(after_at)s, %(after_device)s, %(after_seq)s)")
        params.update(after_at=after[0], after_device=after[1], after_seq=after[2])

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT event_id, device_id, seq, kind, lane_id, occurred_at, recorded_at, received_at, "
            "envelope -> 'payload' AS payload, derived AS reads "
            f"FROM events WHERE {' AND '.join(clauses)} ORDER BY occurred_at, device_id, seq LIMIT %(limit)s",
            params,
        ).fetchall()
    page = paginate(rows, limit, TIMELINE_TAG, lambda row: [row["occurred_at"], row["device_id"], row["seq"]])

    overlapping = [
        visit
        for visit in visits
        if visit["first_seen_at"] < until and (visit["exited_at"] or visit["last_event_at"]) >= since
    ]
    return {
        "container_number": number.value,
        "since": since,
        "until": until,
        "visits": overlapping,
        "alerts": alerts_of_visits(conn, [visit["visit_id"] for visit in overlapping], english),
        **page,
    }
