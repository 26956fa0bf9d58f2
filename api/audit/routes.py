"""Reading the audit log and verifying its hash chain (auditors and admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.db import Db
from api.pagination import Cursor, Limit, Page, decode_cursor, paginate
from api.params import CodeQuery, Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites
from kouan import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require("audit:read"))]


class AuditRecordPublic(BaseModel):
    audit_id: int
    recorded_at: datetime
    actor: str = Field(description="Username, or apikey:NAME for an API key")
    action: str = Field(description="e.g. alert.acknowledge, decision.override, declaration.put")
    subject: str = Field(description="e.g. alert:42")
    site_id: str | None
    reason: str | None
    details: dict[str, Any]
    hash: str = Field(description="SHA-256 of this record and the previous record's hash, hex")


class ChainReportPublic(BaseModel):
    records: int = Field(description="Records checked, up to and including the first broken one")
    intact: bool
    first_broken_id: int | None
    problem: str | None


@router.get("", response_model=Page[AuditRecordPublic])
def list_audit(
    principal: Auditor,
    conn: Db,
    site: SiteQuery = None,
    actor: Annotated[str | None, Query(max_length=80, pattern=r"^[A-Za-z0-9_.@:\-]+$")] = None,
    action: CodeQuery = None,
    since: Annotated[Moment | None, Query(description="Recorded at or after")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """Audit records of the caller's sites, newest first. Records without a site (user and
    API key management) are listed for admins, when every site they grant is the admin's."""
    sites = scoped_sites(conn, principal, site)
    after = decode_cursor("audit", cursor, (int,))
    clauses = ["site_id = ANY(%(sites)s)"]
    if principal.role == "admin" and site is None:
        # Account records carry the sites they grant. An admin gets those within the admin's sites.
        clauses = [
            "(site_id = ANY(%(sites)s) OR (site_id IS NULL AND jsonb_typeof(details -> 'sites') = 'array' "
            "AND ARRAY(SELECT jsonb_array_elements_text(details -> 'sites')) <@ %(sites)s::text[]))"
        ]
    params: dict[str, Any] = {"sites": sites, "limit": limit + 1}
    for column, value in (("actor", actor), ("action", action)):
        if value is not None:
            clauses.append(f"{column} = %({column})s")
            params[column] = value
    if since is not None:
        clauses.append("recorded_at >= %(since)s")
        params["since"] = since
    if after is not None:
        clauses.append("audit_id < %(after)s")
        params["after"] = after[0]

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT audit_id, recorded_at, actor, action, subject, site_id, reason, details, "
            f"encode(hash, 'hex') AS hash FROM audit_log WHERE {' AND '.join(clauses)} "
            "ORDER BY audit_id DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    return paginate(rows, limit, "audit", lambda row: [row["audit_id"]])


@router.get("/verify", response_model=ChainReportPublic)
def verify_chain(principal: Auditor, conn: Db) -> dict:
    """Recompute the whole hash chain (every site's records: the chain is one) and report the
    first record that does not match."""
    with conn.transaction():
        report = audit.verify(conn)
    return {
        "records": report.records,
        "intact": report.intact,
        "first_broken_id": report.first_broken_id,
        "problem": report.problem,
    }
