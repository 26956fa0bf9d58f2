from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from api.containers import service
from api.containers.schemas import ContainerPublic, TimelinePublic, VisitSummary
from api.db import Db
from api.errors import prefers_english
from api.pagination import Cursor, Limit, Page
from api.params import CodeQuery, LaneQuery, Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1/containers", tags=["containers"])

Reader = Annotated[Principal, Depends(require("containers:read"))]
NumberPath = Annotated[str, Path(description="ISO 6346 container number", max_length=32)]


@router.get("", response_model=Page[VisitSummary])
def search_containers(
    principal: Reader,
    conn: Db,
    site: SiteQuery = None,
    lane: LaneQuery = None,
    status: Literal["seen", "entered", "scanned", "exited"] | None = None,
    customs_status: Literal["undeclared", "declared", "inspection_ordered", "released", "held", "cancelled"]
    | None = None,
    flag: Annotated[CodeQuery, Query(description="A visit flag, e.g. seal_mismatch")] = None,
    number_prefix: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{1,4}[0-9]{0,7}$", description="Start of the container number")
    ] = None,
    declaration_number: Annotated[str | None, Query(pattern=r"^[0-9]{18}$")] = None,
    since: Annotated[Moment | None, Query(description="Last event at or after")] = None,
    until: Annotated[Moment | None, Query(description="Last event before")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Container visits matching the filters, latest activity first."""
    return service.search(
        conn,
        scoped_sites(conn, principal, site),
        lane=lane,
        status=status,
        customs_status=customs_status,
        flag=flag,
        number_prefix=number_prefix.upper() if number_prefix else None,
        declaration_number=declaration_number,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{number}", response_model=ContainerPublic)
def get_container(number: NumberPath, principal: Reader, conn: Db, site: SiteQuery = None) -> dict:
    """Return a container's latest visit: where it is, its declaration and its flags."""
    return service.get_container(conn, scoped_sites(conn, principal, site), number)


@router.get("/{number}/timeline", response_model=TimelinePublic)
def get_timeline(
    request: Request,
    number: NumberPath,
    principal: Reader,
    conn: Db,
    site: SiteQuery = None,
    visit_id: Annotated[
        int | None, Query(ge=1, le=2**62, description="Visit to show; the latest when omitted")
    ] = None,
    since: Annotated[
        Moment | None, Query(description="Window start (occurred_at); the visit's when omitted")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Window end, exclusive; at most 31 days after since")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """List every event of the container in a window: each read's raw text, source and confidence, and the
    alerts of its visits with their evidence."""
    return service.timeline(
        conn,
        scoped_sites(conn, principal, site),
        number,
        prefers_english(request),
        visit_id=visit_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
