"""Declaration writes and reads. A write re-evaluates every container it covers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from api.declarations.schemas import DeclarationPut
from api.errors import ApiError, Conflict, NotFound
from api.pagination import decode_cursor, paginate
from api.security.auth import Principal
from collector.correlation.shell import reevaluate_containers
from kouan import audit, identifiers

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
            f"报关单 {parsed.value} 的进出口标志为{'进口' if parsed.direction == 'import' else '出口'}，"
            "与 direction 不符。",
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


# Status lifecycle: from each status, the statuses a declaration may move to. A
# cancelled declaration is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "declared": frozenset({"inspection_ordered", "released", "held", "cancelled"}),
    "inspection_ordered": frozenset({"released", "held", "cancelled"}),
    "held": frozenset({"inspection_ordered", "released", "cancelled"}),
    "released": frozenset({"held", "cancelled"}),
    "cancelled": frozenset(),
}


def check_transition(number: str, current: str, new: str) -> None:
    if new == current or new in TRANSITIONS[current]:
        return
    raise Conflict(
        "invalid_status_transition",
        f"Declaration {number} cannot go from {current} to {new}.",
        f"报关单 {number} 的状态不能从 {current} 变更为 {new}。",
    )


def put_declaration(
    conn: Connection, principal: Principal, number: str, body: DeclarationPut
) -> tuple[bool, int]:
    """Create or update a declaration and audit the change; return (changed, version).

    A site the caller cannot see is reported as unregistered, and a declaration of
    such a site as not found.
    """
    parsed, document = normalise(number, body)
    now = datetime.now(UTC)

    with conn.transaction():
        site = conn.execute("SELECT 1 FROM sites WHERE site_id = %s", (body.site_id,)).fetchone()
        if site is None or not principal.sees(body.site_id):
            raise ApiError(
                422,
                "unknown_site",
                f"Site {body.site_id} is not registered.",
                f"场站 {body.site_id} 未登记。",
            )

        row = conn.execute(
            "SELECT document, version, status, site_id FROM declarations "
            "WHERE declaration_number = %s FOR UPDATE",
            (parsed.value,),
        ).fetchone()
        if row is not None and not principal.sees(row[3]):
            raise NotFound("Declaration", "报关单", parsed.value)
        if row is not None and row[0] == document:
            return False, row[1]
        if row is not None:
            check_transition(parsed.value, row[2], body.status)

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
        if row is not None and row[3] != body.site_id:
            reevaluate_containers(conn, row[3], numbers)
        audit.append(
            conn,
            principal.actor,
            "declaration.put",
            f"declaration:{parsed.value}",
            site_id=body.site_id,
            details={
                "version": version,
                "status": body.status,
                "previous_status": None if row is None else row[2],
                "containers": [item["container_number"] for item in document["containers"]],
            },
        )

    logger.info("Declaration %s version %d stored (%s)", parsed.value, version, body.status)
    return True, version


def get_declaration(conn: Connection, principal: Principal, number: str) -> dict[str, Any]:
    """A declaration with the visit of each of its containers: its completeness view."""
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
    if row is None or not principal.sees(row[1]):
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


def change_status(
    conn: Connection, principal: Principal, number: str, status: str, reason: str
) -> dict[str, Any]:
    """Move a declaration along its status lifecycle, re-evaluate its containers and audit it."""
    try:
        parsed = identifiers.parse_declaration_number(number)
    except identifiers.DeclarationNumberError as exc:
        raise _identifier_error("declaration_number", exc) from exc

    with conn.transaction():
        row = conn.execute(
            "SELECT site_id, status, document FROM declarations WHERE declaration_number = %s FOR UPDATE",
            (parsed.value,),
        ).fetchone()
        if row is None or not principal.sees(row[0]):
            raise NotFound("Declaration", "报关单", parsed.value)
        site_id, current, document = row
        check_transition(parsed.value, current, status)
        if status != current:
            conn.execute(
                """
                UPDATE declarations SET status = %s, status_changed_at = now(), updated_at = now(),
                       version = version + 1, document = %s
                WHERE declaration_number = %s
                """,
                (status, Jsonb({**document, "status": status}), parsed.value),
            )
            numbers = [item["container_number"] for item in document["containers"]]
            reevaluate_containers(conn, site_id, numbers)
            audit.append(
                conn,
                principal.actor,
                "declaration.status",
                f"declaration:{parsed.value}",
                site_id=site_id,
                reason=reason,
                details={"status": status, "previous_status": current},
            )
            logger.info(
                "Declaration %s status %s -> %s by %s", parsed.value, current, status, principal.actor
            )
    return get_declaration(conn, principal, parsed.value)


LIST_TAG = "declarations"


def list_declarations(
    conn: Connection,
    sites: list[str],
    *,
    status: str | None,
    container_number: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Declarations of the caller's sites, latest status change first, with their counts."""
    after = decode_cursor(LIST_TAG, cursor, (datetime, str))
    clauses = ["d.site_id = ANY(%(sites)s)"]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    if status is not None:
        clauses.append("d.status = %(status)s")
        params["status"] = status
    if container_number is not None:
        clauses.append(
            "d.declaration_number IN (SELECT declaration_number FROM declaration_containers "
            "WHERE container_number = %(container)s)"
        )
        params["container"] = container_number
    if since is not None:
        clauses.append("d.status_changed_at >= %(since)s")
        params["since"] = since
    if after is not None:
        clauses.append("(d.status_changed_at, d.declaration_number) < (%(after_at)s, %(after_number)s)")
        params.update(after_at=after[0], after_number=after[1])

    rows = conn.execute(
        f"""
        SELECT d.declaration_number, d.site_id, d.customs_district, d.direction, d.status,
               d.declared_at, d.status_changed_at, d.version,
               (SELECT count(*) FROM declaration_containers dc
                WHERE dc.declaration_number = d.declaration_number) AS containers
        FROM declarations d WHERE {" AND ".join(clauses)}
        ORDER BY d.status_changed_at DESC, d.declaration_number DESC LIMIT %(limit)s
        """,
        params,
    ).fetchall()
    keys = (
        "declaration_number",
        "site_id",
        "customs_district",
        "direction",
        "status",
        "declared_at",
        "status_changed_at",
        "version",
        "containers",
    )
    items = [dict(zip(keys, row, strict=True)) for row in rows]
    return paginate(
        items, limit, LIST_TAG, lambda item: [item["status_changed_at"], item["declaration_number"]]
    )
