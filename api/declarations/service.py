"""Declaration writes and reads. A write re-evaluates every container it covers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from api.declarations.schemas import DeclarationPut
from api.errors import ApiError, NotFound
from collector.correlation.shell import reevaluate_containers
from kouan import identifiers

logger = logging.getLogger(__name__)


def _identifier_error(field: str, exc: identifiers.IdentifierError) -> ApiError:
    return ApiError(
        422,
        f"invalid_{field}",
        exc.message_en,
        exc.message_zh,
        [{"field": field, "value": exc.value, "problem": exc.code}],
    )


def normalise(number: str, body: DeclarationPut) -> tuple[identifiers.DeclarationNumber, dict[str, Any]]:
    """Validate every identifier of a declaration and return the normalised document."""
    try:
        parsed = identifiers.parse_declaration_number(number)
    except identifiers.DeclarationNumberError as exc:
        raise _identifier_error("declaration_number", exc) from exc

    if body.direction is not None and body.direction != parsed.direction:
        raise ApiError(
            422,
            "direction_mismatch",
            f"Declaration {parsed.value} is an {parsed.direction} number but direction is {body.direction}.",
            f"报关单 {parsed.value} 的进出口标志为{'进口' if parsed.direction == 'import' else '出口'}，与 direction 不符。",
        )

    consignee = None
    if body.consignee_code:
        try:
            consignee = identifiers.parse_credit_code(body.consignee_code).value
        except identifiers.CreditCodeError as exc:
            raise _identifier_error("consignee_code", exc) from exc

    containers = []
    seen = set()
    for item in body.containers:
        try:
            container = identifiers.parse_container_number(item.container_number, repair=False)
        except identifiers.ContainerNumberError as exc:
            raise _identifier_error("container_number", exc) from exc
        if container.value in seen:
            raise ApiError(
                422,
                "duplicate_container",
                f"Container {container.value} is listed twice in declaration {parsed.value}.",
                f"集装箱 {container.value} 在报关单 {parsed.value} 中重复出现。",
            )
        seen.add(container.value)
        seals = sorted(
            {identifiers.parse_seal_number(seal).value for seal in item.seal_numbers if seal.strip()}
        )
        containers.append(
            {
                "container_number": container.value,
                "size_type": item.size_type,
                "seal_numbers": seals,
                "gross_weight_kg": item.gross_weight_kg,
            }
        )

    document = {
        "site_id": body.site_id,
        "status": body.status,
        "direction": parsed.direction,
        "consignee_code": consignee,
        "consignee_name": body.consignee_name,
        "declared_at": body.declared_at.isoformat() if body.declared_at else None,
        "containers": sorted(containers, key=lambda item: item["container_number"]),
    }
    return parsed, document


def put_declaration(conn: Connection, number: str, body: DeclarationPut) -> tuple[bool, int]:
    """Create or update a declaration; return (changed, version)."""
    parsed, document = normalise(number, body)
    now = datetime.now(UTC)

    with conn.transaction():
        site = conn.execute("SELECT 1 FROM sites WHERE site_id = %s", (body.site_id,)).fetchone()
        if site is None:
            raise ApiError(
                422,
                "unknown_site",
                f"Site {body.site_id} is not registered.",
                f"场站 {body.site_id} 未登记。",
            )

        row = conn.execute(
            "SELECT document, version, status FROM declarations WHERE declaration_number = %s FOR UPDATE",
            (parsed.value,),
        ).fetchone()
        if row is not None and row[0] == document:
            return False, row[1]

        old_containers = [] if row is None else [item["container_number"] for item in row[0]["containers"]]
        version = 1 if row is None else row[1] + 1
        status_changed = row is None or row[2] != body.status
        declared_at = body.declared_at or now

        conn.execute(
            """
            INSERT INTO declarations (declaration_number, site_id, customs_district, direction, status,
                consignee_code, consignee_name, declared_at, status_changed_at, version, document)
            VALUES (%(number)s, %(site)s, %(district)s, %(direction)s, %(status)s, %(consignee)s,
                    %(consignee_name)s, %(declared_at)s, %(now)s, %(version)s, %(document)s)
            ON CONFLICT (declaration_number) DO UPDATE SET
                site_id = EXCLUDED.site_id, status = EXCLUDED.status,
                consignee_code = EXCLUDED.consignee_code, consignee_name = EXCLUDED.consignee_name,
                declared_at = EXCLUDED.declared_at, version = EXCLUDED.version,
                document = EXCLUDED.document, updated_at = now(),
                status_changed_at = CASE WHEN %(status_changed)s THEN EXCLUDED.status_changed_at
                                         ELSE declarations.status_changed_at END
            """,
            {
                "number": parsed.value,
                "site": body.site_id,
                "district": parsed.customs_district,
                "direction": parsed.direction,
                "status": body.status,
                "consignee": document["consignee_code"],
                "consignee_name": body.consignee_name,
                "declared_at": declared_at,
                "now": now,
                "version": version,
                "document": Jsonb(document),
                "status_changed": status_changed,
            },
        )
        conn.execute("DELETE FROM declaration_containers WHERE declaration_number = %s", (parsed.value,))
        with conn.cursor() as cursor:
            cursor.executemany(
                """
                INSERT INTO declaration_containers
                    (declaration_number, container_number, size_type, seal_numbers, gross_weight_kg)
                VALUES (%s, %s, %s, %s, %s)
                """,
                [
                    (
                        parsed.value,
                        item["container_number"],
                        item["size_type"],
                        item["seal_numbers"],
                        item["gross_weight_kg"],
                    )
                    for item in document["containers"]
                ],
            )
        numbers = sorted({*old_containers, *(item["container_number"] for item in document["containers"])})
        reevaluate_containers(conn, body.site_id, numbers)

    logger.info("Declaration %s version %d stored (%s)", parsed.value, version, body.status)
    return True, version


def get_declaration(conn: Connection, number: str) -> dict[str, Any]:
    try:
        parsed = identifiers.parse_declaration_number(number)
    except identifiers.DeclarationNumberError as exc:
        raise _identifier_error("declaration_number", exc) from exc

    row = conn.execute(
        """
        SELECT declaration_number, site_id, customs_district, direction, status, consignee_code,
               consignee_name, declared_at, status_changed_at, version
        FROM declarations WHERE declaration_number = %s
        """,
        (parsed.value,),
    ).fetchone()
    if row is None:
        raise NotFound("Declaration", "报关单", parsed.value)

    keys = (
        "declaration_number",
        "site_id",
        "customs_district",
        "direction",
        "status",
        "consignee_code",
        "consignee_name",
        "declared_at",
        "status_changed_at",
        "version",
    )
    declaration = dict(zip(keys, row, strict=True))
    declaration["consignee_code"] = (declaration["consignee_code"] or "").strip() or None

    containers = conn.execute(
        """
        SELECT dc.container_number, dc.size_type, dc.seal_numbers, dc.gross_weight_kg,
               v.status, v.entered_at, v.scanned_at, v.exited_at, coalesce(v.flags, '{}')
        FROM declaration_containers dc
        LEFT JOIN LATERAL (
            SELECT * FROM container_visits cv
            WHERE cv.container_number = dc.container_number AND cv.site_id = %s
            ORDER BY cv.first_seen_at DESC LIMIT 1
        ) v ON true
        WHERE dc.declaration_number = %s
        ORDER BY dc.container_number
        """,
        (declaration["site_id"], parsed.value),
    ).fetchall()

    items = [
        {
            "container_number": number.strip(),
            "size_type": size_type,
            "seal_numbers": list(seals),
            "gross_weight_kg": float(weight) if weight is not None else None,
            "visit_status": status,
            "entered_at": entered,
            "scanned_at": scanned,
            "exited_at": exited,
            "flags": list(flags),
        }
        for number, size_type, seals, weight, status, entered, scanned, exited, flags in containers
    ]
    declaration["containers"] = items
    declaration["counts"] = {
        "containers": len(items),
        "arrived": sum(1 for item in items if item["entered_at"] is not None),
        "scanned": sum(1 for item in items if item["scanned_at"] is not None),
        "exited": sum(1 for item in items if item["exited_at"] is not None),
        "missing": sum(1 for item in items if item["visit_status"] is None),
    }
    return declaration
