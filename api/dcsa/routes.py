from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.db import Db
from api.dcsa import service
from api.params import SiteQuery
from api.security.auth import Principal, require, scoped_sites

router = APIRouter(prefix="/api/v1/containers", tags=["dcsa"])

Reader = Annotated[Principal, Depends(require("containers:read"))]
NumberPath = Annotated[
    str, Path(description="ISO 6346 container number, or a stored non-ISO equipment reference", max_length=32)
]


@router.get("/{number}/dcsa-events", responses={404: {}, 422: {}})
def get_dcsa_events(
    number: NumberPath, principal: Reader, conn: Db, site: SiteQuery = None
) -> list[dict[str, Any]]:
    """List the container's events as DCSA Track and Trace v3 equipment events, oldest first.

    Gate passages are GTIN/GTOT, scans INSP, terminal-reported moves keep their code
    (LOAD, DISC, ...), and a customs release of a declaration naming the container is
    CUSR. A corrected DCSA event appears in its current version only.
    """
    return service.dcsa_events(conn, scoped_sites(conn, principal, site), number)
