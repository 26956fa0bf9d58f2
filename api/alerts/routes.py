from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.alerts import service
from api.alerts.schemas import AlertAction, AlertPublic, AlertStatus
from api.db import Db
from api.errors import prefers_english
from api.metrics import ALERT_ACTIONS
from api.pagination import Cursor, Limit, Page
from api.params import CodeQuery, DeviceQuery, LaneQuery, Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Reader = Annotated[Principal, Depends(require("alerts:read"))]
Actor = Annotated[Principal, Depends(require("alerts:act"))]
AlertId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", response_model=Page[AlertPublic])
def list_alerts(
    request: Request,
    principal: Reader,
    conn: Db,
    site: SiteQuery = None,
    status: AlertStatus | None = None,
    rule_code: CodeQuery = None,
    container_number: Annotated[str | None, Query(pattern=r"^[A-Za-z]{4}[0-9]{7}$")] = None,
    lane: LaneQuery = None,
    device: DeviceQuery = None,
    since: Annotated[Moment | None, Query(description="Raised or repeated at or after")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Alerts of the caller's sites, newest first, with the evidence behind each."""
    return service.list_alerts(
        conn,
        scoped_sites(conn, principal, site),
        prefers_english(request),
        status=status,
        rule_code=rule_code,
        container_number=container_number.upper() if container_number else None,
        lane=lane,
        device=device,
        since=since,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{alert_id}", response_model=AlertPublic)
def get_alert(request: Request, alert_id: AlertId, principal: Reader, conn: Db) -> dict:
    """Return one alert with its evidence."""
    return service.get_alert(conn, principal, alert_id, prefers_english(request))


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge(request: Request, alert_id: AlertId, body: AlertAction, principal: Actor, conn: Db) -> dict:
    """Acknowledge an open alert: someone is on it. Audited with the reason."""
    result = service.acknowledge(conn, principal, alert_id, body.reason, prefers_english(request))
    ALERT_ACTIONS.labels("acknowledge").inc()
    return result


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
def resolve(request: Request, alert_id: AlertId, body: AlertAction, principal: Actor, conn: Db) -> dict:
    """Resolve an alert with the reason it is closed. Audited."""
    result = service.resolve(conn, principal, alert_id, body.reason, prefers_english(request))
    ALERT_ACTIONS.labels("resolve").inc()
    return result
