"""Store declarations and customs responses read from CUSDEC, CUSRES and 报关单 JSON.

Declarations go through ``api.declarations.service.put_declaration``, the function
behind ``PUT /api/v1/declarations/{number}``, so an imported declaration is
validated, versioned and correlated exactly like one sent to the API. Responses
change the declaration's status the same way and record other authorities' open
holds in ``declarations.other_holds``; every response is kept in
``customs_responses``, applied or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

logger = logging.getLogger(__name__)

# Kouan's declaration statuses have no "rejected": a declaration customs sent back
# (退单) is no longer in force, which is what "cancelled" means to the gate.
_KOUAN_STATUS = {
    "released": "released",
    "held": "held",
    "inspection_ordered": "inspection_ordered",
    "rejected": "cancelled",
}
# Statuses that loosen control; a response whose envelope is in doubt may not apply them.
_LOOSENING = frozenset({"released"})


class DeclarationNotFound(LookupError):
    def __init__(self, number: str) -> None:
        super().__init__(f"Declaration {number} is not stored; import its CUSDEC or 报关单 first")
        self.number = number


@dataclass(frozen=True)
class AppliedResponse:
    declaration_number: str
    status: str
    other_holds: list[str]
    applied: bool
    reason: str
    version: int


# The audit log names this actor for declarations and status changes from files.
IMPORT_ACTOR = "kouan-import"


def _principal(site_id: str, actor: str) -> Any:
    """Build the principal a file import acts as: an integrator of the one site it imports for."""
    from api.security.auth import Principal

    return Principal("user", actor, "integrator", frozenset({site_id}))


def store_declaration(
    conn: Connection, number: str, body: dict[str, Any], actor: str = IMPORT_ACTOR
) -> tuple[bool, int]:
    """Validate and store a declaration as ``PUT /api/v1/declarations/{number}`` does."""
    from api.declarations.schemas import DeclarationPut
    from api.declarations.service import put_declaration

    return put_declaration(
        conn, _principal(body["site_id"], actor), number, DeclarationPut.model_validate(body)
    )


def apply_response(
    conn: Connection,
    number: str,
    lifecycle: str | None,
    other_holds: list[str],
    *,
    source_format: str,
    message_ref: str | None,
    document: dict[str, Any],
    envelope_sound: bool = True,
    actor: str = IMPORT_ACTOR,
) -> AppliedResponse:
    """Move a declaration through its lifecycle, record other holds and the response itself."""
    from api.declarations.service import change_status
    from api.errors import ApiError
    from collector.correlation.shell import reevaluate_containers

    exists = conn.execute("SELECT 1 FROM declarations WHERE declaration_number = %s", (number,)).fetchone()
    if exists is None:
        _record(
            conn,
            number,
            lifecycle,
            other_holds,
            None,
            False,
            "declaration not stored",
            source_format,
            message_ref,
            document,
        )
        raise DeclarationNotFound(number)

    with conn.transaction():
        row = conn.execute(
            """
            SELECT site_id, status, other_holds, document, version FROM declarations
            WHERE declaration_number = %s FOR UPDATE
            """,
            (number,),
        ).fetchone()
        if row is None:  # deleted since the check above
            raise DeclarationNotFound(number)
        site_id, status, held_by, stored, version = row
        target, reason = _target_status(status, lifecycle, envelope_sound)
        holds = sorted({*held_by, *other_holds})
        if holds != sorted(held_by):
            conn.execute(
                "UPDATE declarations SET other_holds = %s, updated_at = now() WHERE declaration_number = %s",
                (holds, number),
            )

        if target != status:
            try:
                version = change_status(
                    conn,
                    _principal(site_id, actor),
                    number,
                    target,
                    f"{source_format} {message_ref}: {reason}",
                )["version"]
            except ApiError as exc:
                target, reason = status, exc.message_en
        if target == status:
            reevaluate_containers(conn, site_id, [item["container_number"] for item in stored["containers"]])
        applied = target != status or holds != sorted(held_by)
        _record(
            conn,
            number,
            lifecycle,
            other_holds,
            target,
            applied,
            reason,
            source_format,
            message_ref,
            document,
        )

    logger.info(
        "Declaration %s: %s response %s -> status %s, other holds %s",
        number,
        source_format,
        message_ref,
        target,
        holds,
    )
    return AppliedResponse(number, target, holds, applied, reason, version)


def _target_status(current: str, lifecycle: str | None, envelope_sound: bool) -> tuple[str, str]:
    if lifecycle is None:
        return current, "the response states no status Kouan maps"
    target = _KOUAN_STATUS[lifecycle]
    if target in _LOOSENING and not envelope_sound:
        return current, "a release from a message with envelope problems is not applied"
    return target, f"customs status {lifecycle}"


def _record(
    conn: Connection,
    number: str,
    lifecycle: str | None,
    other_holds: list[str],
    applied_status: str | None,
    applied: bool,
    reason: str,
    source_format: str,
    message_ref: str | None,
    document: dict[str, Any],
) -> None:
    conn.execute(
        """
        INSERT INTO customs_responses (declaration_number, source_format, message_ref, customs_status,
            other_holds, applied_status, applied, reason, document)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            number,
            source_format,
            message_ref,
            lifecycle or "unknown",
            other_holds,
            applied_status,
            applied,
            reason,
            Jsonb(document),
        ),
    )
