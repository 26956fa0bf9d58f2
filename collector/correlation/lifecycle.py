"""Declaration lifecycle: which status changes are allowed, and where each container is.

A declaration (报关单) moves between declared, inspection_ordered, released, held
and cancelled. The API stores a change and then calls
``collector.correlation.shell.reevaluate_containers`` in the same transaction, so
every visit of the containers it lists is re-evaluated by the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from collector.correlation.actions import ActionNotFound, InvalidAction

# Allowed changes, the same as api/declarations/service.py enforces. A release can
# be revoked by a hold (post-release control). A cancelled declaration is final, and
# a new declaration replaces it.
TRANSITIONS: dict[str, frozenset[str]] = {
    "declared": frozenset({"inspection_ordered", "released", "held", "cancelled"}),
    "inspection_ordered": frozenset({"released", "held", "cancelled"}),
    "held": frozenset({"inspection_ordered", "released", "cancelled"}),
    "released": frozenset({"held", "cancelled"}),
    "cancelled": frozenset(),
}

STATUS_ZH = {
    "declared": "已申报",
    "inspection_ordered": "已布控",
    "released": "已放行",
    "held": "已扣留",
    "cancelled": "已撤销",
}


def check_status_change(declaration_number: str, current: str | None, requested: str) -> None:
    """Raise InvalidAction when ``requested`` may not follow ``current`` (None: a new declaration)."""
    if requested not in TRANSITIONS:
        raise InvalidAction(
            "declaration_status_unknown",
            f"报关单状态 {requested} 无效。",
            f"Declaration status {requested!r} is not one of {', '.join(TRANSITIONS)}.",
        )
    if current is None or current == requested or requested in TRANSITIONS[current]:
        return

    raise InvalidAction(
        "declaration_status_change_invalid",
        f"报关单 {declaration_number} 状态不能从{STATUS_ZH[current]}改为{STATUS_ZH[requested]}。",
        f"Declaration {declaration_number} cannot change from {current} to {requested}.",
    )


@dataclass(frozen=True)
class ContainerProgress:
    """The progress of one declared container: arrived, scanned, released, left, or missing."""

    container_number: str
    arrived: bool
    scanned: bool
    released: bool
    left: bool
    missing: bool
    visit_id: int | None
    status: str | None
    entered_at: Any
    scanned_at: Any
    exited_at: Any


def declaration_progress(conn: Connection, declaration_number: str) -> list[ContainerProgress]:
    """Return, per container of the declaration, its latest visit at the declaration's site.

    ``released`` means the declaration is released with no other authority's hold
    open; ``missing`` means the container has not been seen at the site.
    """
    declaration = conn.execute(
        "SELECT site_id, status, other_holds FROM declarations WHERE declaration_number = %s",
        (declaration_number,),
    ).fetchone()
    if declaration is None:
        raise ActionNotFound(
            "declaration_not_found",
            f"报关单 {declaration_number} 不存在。",
            f"Declaration {declaration_number} was not found.",
        )
    site_id, status, other_holds = declaration
    released = status == "released" and not other_holds

    rows = conn.execute(
        """
        SELECT dc.container_number, v.visit_id, v.status, v.entered_at, v.scanned_at, v.exited_at
        FROM declaration_containers dc
        LEFT JOIN LATERAL (
            SELECT visit_id, status, entered_at, scanned_at, exited_at FROM container_visits
            WHERE site_id = %s AND container_number = dc.container_number AND status <> 'void'
            ORDER BY first_seen_at DESC LIMIT 1
        ) v ON true
        WHERE dc.declaration_number = %s
        ORDER BY dc.container_number
        """,
        (site_id, declaration_number),
    ).fetchall()
    return [
        ContainerProgress(
            container_number=number.strip(),
            arrived=entered_at is not None,
            scanned=scanned_at is not None,
            released=released,
            left=exited_at is not None,
            missing=visit_id is None,
            visit_id=visit_id,
            status=visit_status,
            entered_at=entered_at,
            scanned_at=scanned_at,
            exited_at=exited_at,
        )
        for number, visit_id, visit_status, entered_at, scanned_at, exited_at in rows
    ]
