from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.db import Db
from api.devices import service
from api.devices.schemas import DevicePublic, LanePublic
from api.pagination import Cursor, Limit, Page
from api.params import IDENTIFIER_PATTERN, LaneQuery, SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1", tags=["devices and lanes"])

Reader = Annotated[Principal, Depends(require("devices:read"))]


@router.get("/devices", response_model=Page[DevicePublic])
def list_devices(
    principal: Reader,
    conn: Db,
    site: SiteQuery = None,
    lane: LaneQuery = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$", description="lane, scanner, ...")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Devices with their health, last seen time, reported outbox depth and clock offset."""
    return service.list_devices(
        conn, scoped_sites(conn, principal, site), lane=lane, kind=kind, limit=limit, cursor=cursor
    )


@router.get("/devices/{device_id}", response_model=DevicePublic)
def get_device(
    device_id: Annotated[str, Path(pattern=IDENTIFIER_PATTERN)], principal: Reader, conn: Db
) -> dict:
    """Return one device's health and latest status."""
    return service.get_device(conn, sorted(principal.sites), device_id)


@router.get("/lanes", response_model=Page[LanePublic])
def list_lanes(
    principal: Reader, conn: Db, site: SiteQuery = None, limit: Limit = 100, cursor: Cursor = None
) -> dict:
    """Lanes with their mode (automatic or manual, and why), device health and open alerts."""
    return service.list_lanes(conn, scoped_sites(conn, principal, site), limit, cursor)
