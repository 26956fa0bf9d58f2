from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.db import Db
from api.declarations import service
from api.declarations.schemas import (
    DeclarationPublic,
    DeclarationPut,
    DeclarationStatus,
    DeclarationStatusChange,
    DeclarationSummary,
)
from api.metrics import DECLARATION_WRITES
from api.pagination import Cursor, Limit, Page
from api.params import Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1/declarations", tags=["declarations"])

NumberPath = Annotated[str, Path(description="18-digit 海关编号", max_length=32)]
Reader = Annotated[Principal, Depends(require("declarations:read"))]


@router.get("", response_model=Page[DeclarationSummary])
def list_declarations(
    principal: Reader,
    conn: Db,
    site: SiteQuery = None,
    status: DeclarationStatus | None = None,
    container_number: Annotated[str | None, Query(pattern=r"^[A-Z]{4}[0-9]{7}$")] = None,
    since: Annotated[Moment | None, Query(description="Status changed at or after")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Declarations of the caller's sites, latest status change first."""
    return service.list_declarations(
        conn,
        scoped_sites(conn, principal, site),
        status=status,
        container_number=container_number,
        since=since,
        limit=limit,
        cursor=cursor,
    )


@router.put(
    "/{number}",
    response_model=DeclarationPublic,
    responses={201: {"model": DeclarationPublic}},
)
def put_declaration(
    number: NumberPath,
    body: DeclarationPut,
    response: Response,
    principal: Annotated[Principal, Depends(require("declarations:write"))],
    conn: Db,
) -> dict:
    """Create or replace a declaration. Sending the same body again changes nothing.

    Every identifier is validated (海关编号, 统一社会信用代码, ISO 6346 container
    numbers). A change re-evaluates the visits of every container it covers, must
    follow the status lifecycle, and is audited.
    """
    changed, version = service.put_declaration(conn, principal, number, body)
    response.status_code = 201 if changed and version == 1 else 200
    if not changed:
        outcome = "unchanged"
    elif version == 1:
        outcome = "created"
    else:
        outcome = "updated"
    DECLARATION_WRITES.labels(outcome).inc()
    return service.get_declaration(conn, principal, number)


@router.get("/{number}", response_model=DeclarationPublic)
def get_declaration(number: NumberPath, principal: Reader, conn: Db) -> dict:
    """Return a declaration with each of its containers: arrived, scanned, exited or missing."""
    return service.get_declaration(conn, principal, number)


@router.post("/{number}/status", response_model=DeclarationPublic)
def change_status(
    number: NumberPath,
    body: DeclarationStatusChange,
    principal: Annotated[Principal, Depends(require("declarations:status"))],
    conn: Db,
) -> dict:
    """Move a declaration along its lifecycle (declared, inspection_ordered, held, released,
    cancelled). Cancelled is final. Audited with the reason."""
    return service.change_status(conn, principal, number, body.status, body.reason)
