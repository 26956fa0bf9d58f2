from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.db import Db
from api.params import IDENTIFIER_PATTERN, LaneQuery, Moment
from api.security.auth import Principal, require, scoped_sites
from api.statistics import service
from api.statistics.schemas import StatisticsPublic

router = APIRouter(prefix="/api/v1/statistics", tags=["statistics"])


@router.get("", response_model=StatisticsPublic)
def get_statistics(
    principal: Annotated[Principal, Depends(require("statistics:read"))],
    conn: Db,
    site: Annotated[str, Query(pattern=IDENTIFIER_PATTERN, description="Site id")],
    bucket: Literal["hour", "day"] = "hour",
    lane: LaneQuery = None,
    since: Annotated[Moment | None, Query(description="Default: 24 h (hour) or 7 days (day) ago")] = None,
    until: Annotated[Moment | None, Query(description="Exclusive; default now")] = None,
) -> dict:
    """Passages, alerts and gate decisions per lane per hour or per day, bucketed in the site's
    time zone (Asia/Shanghai for a Chinese port), not UTC. At most 31 days of hours or 366 of days."""
    (site_id,) = scoped_sites(conn, principal, site)
    return service.statistics(conn, site_id, bucket, lane, since, until)
