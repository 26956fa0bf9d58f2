from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.db import Db
from api.decisions import service
from api.decisions.schemas import DecisionPublic, OverridePublic, OverrideRequest
from api.errors import prefers_english
from api.metrics import OVERRIDES
from api.pagination import Cursor, Limit, Page
from api.params import LaneQuery, Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1/decisions", tags=["gate decisions"])


@router.get("", response_model=Page[DecisionPublic])
def list_decisions(
    request: Request,
    principal: Annotated[Principal, Depends(require("decisions:read"))],
    conn: Db,
    site: SiteQuery = None,
    lane: LaneQuery = None,
    decision: Literal["release", "hold", "manual"] | None = None,
    since: Annotated[Moment | None, Query(description="Issued at or after")] = None,
    until: Annotated[Moment | None, Query(description="Issued before")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Gate decision history per lane, newest first, with overrides linked both ways."""
    return service.list_decisions(
        conn,
        scoped_sites(conn, principal, site),
        prefers_english(request),
        lane=lane,
        decision=decision,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{command_id}", response_model=DecisionPublic)
def get_decision(
    request: Request,
    command_id: uuid.UUID,
    principal: Annotated[Principal, Depends(require("decisions:read"))],
    conn: Db,
) -> dict:
    """Return one gate decision."""
    return service.get_decision(conn, principal, command_id, prefers_english(request))


@router.post("/{command_id}/override", response_model=OverridePublic, status_code=201)
def override_decision(
    request: Request,
    command_id: uuid.UUID,
    body: OverrideRequest,
    principal: Annotated[Principal, Depends(require("decisions:override"))],
    conn: Db,
) -> dict:
    """Release a held truck (customs officers only): a new release decision that overrides the hold.

    The decision and its audit record are committed first, then the command is sent to
    the lane's commands topic. ``published`` reports whether the broker accepted it.
    """
    settings = request.app.state.settings
    decision, command = service.override(
        conn, principal, command_id, body.reason, settings.override_valid_s, prefers_english(request)
    )
    published = request.app.state.publisher.publish(decision["site_id"], command)
    OVERRIDES.labels("yes" if published else "no").inc()
    return {**decision, "published": published}
