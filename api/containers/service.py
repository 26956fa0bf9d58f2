from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.errors import ApiError, NotFound
from kouan import identifiers

VISIT_COLUMNS = (
    "visit_id, site_id, status, customs_status, declared, released, first_seen_at, entered_at, "
    "scanned_at, exited_at, last_event_at, entry_lane, exit_lane, truck_plate, seal_numbers, "
    "gross_weight_kg::float8 AS gross_weight_kg, size_type, flags, event_count, declaration_number"
)


def parse_number(raw: str) -> identifiers.ContainerNumber:
    try:
        return identifiers.parse_container_number(raw, repair=False)
    except identifiers.ContainerNumberError as exc:
        raise ApiError(
            422,
            "invalid_container_number",
            exc.message_en,
            exc.message_zh,
            [{"field": "container_number", "value": exc.value, "problem": exc.code}],
        ) from exc


def get_container(conn: Connection, raw: str) -> dict[str, Any]:
    number = parse_number(raw)
    with conn.cursor(row_factory=dict_row) as cursor:
        visits = cursor.execute(
            f"SELECT {VISIT_COLUMNS} FROM container_visits WHERE container_number = %s "
            "ORDER BY first_seen_at DESC LIMIT 2",
            (number.value,),
        ).fetchall()
        if not visits:
            raise NotFound("Container", "集装箱", number.value)
        (count,) = (
            cursor.execute(
                "SELECT count(*) AS n FROM container_visits WHERE container_number = %s", (number.value,)
            )
            .fetchone()
            .values()
        )

        current = visits[0]
        declaration = None
        if current["declaration_number"]:
            declaration = cursor.execute(
                "SELECT declaration_number, status, direction FROM declarations WHERE declaration_number = %s",
                (current["declaration_number"],),
            ).fetchone()

    return {
        "container_number": number.value,
        "owner_code": number.owner_code,
        "category": number.category,
        "current": current,
        "declaration": declaration,
        "previous_visits": count - 1,
    }
