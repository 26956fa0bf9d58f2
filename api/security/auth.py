"""Caller authentication: bearer token (people) or X-API-Key (systems), role and sites.

Every request looks the user or key up again, so a disabled user, a revoked key or a
changed site list takes effect at once, not when a token expires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from psycopg import Connection

from api.db import Db
from api.errors import Forbidden, NotFound, Unauthenticated
from api.security.roles import PERMISSIONS, allowed
from api.security.tokens import API_KEY_PREFIX, decode_token, secrets_match, split_api_key

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    kind: str  # "user" or "api_key"
    name: str
    role: str
    sites: frozenset[str]

    @property
    def actor(self) -> str:
        """The name recorded in the audit log."""
        return self.name if self.kind == "user" else f"apikey:{self.name}"

    def sees(self, site_id: str | None) -> bool:
        return site_id is not None and site_id in self.sites


def _user(conn: Connection, username: str) -> Principal | None:
    row = conn.execute(
        "SELECT role, sites FROM api_users WHERE username = %s AND enabled", (username,)
    ).fetchone()
    return None if row is None else Principal("user", username, row[0], frozenset(row[1]))


def _api_key(conn: Connection, key: str) -> Principal | None:
    parts = split_api_key(key)
    if parts is None:
        return None

    key_id, presented = parts
    row = conn.execute(
        "SELECT name, secret_sha256, role, sites, "
        "last_used_at IS NULL OR last_used_at < now() - interval '1 minute' "
        "FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
        (key_id,),
    ).fetchone()
    if row is None or not secrets_match(bytes(row[1]), presented):
        return None

    # At most one write per key and minute, not one per request.
    if row[4]:
        conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = %s "
            "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            (key_id,),
        )
    return Principal("api_key", row[0], row[2], frozenset(row[3]))


def current_principal(
    request: Request,
    conn: Db,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Authenticate the request and count it against the caller's rate limit."""
    principal: Principal | None = None
    if api_key:
        principal = _api_key(conn, api_key)
    elif bearer and bearer.startswith(API_KEY_PREFIX):
        # Lets scrapers that only send "Authorization: Bearer" (Prometheus) use an API key.
        principal = _api_key(conn, bearer)
    elif bearer:
        username = decode_token(request.app.state.jwt_secret, bearer)
        principal = _user(conn, username) if username else None
    else:
        raise Unauthenticated()

    if principal is None:
        raise Unauthenticated(
            "invalid_credentials",
            "The token or API key is invalid, expired or revoked; log in again or use a valid key.",
            "令牌或 API 密钥无效、已过期或已吊销，请重新登录或使用有效密钥。",
        )

    request.app.state.request_limiter.check(f"{principal.kind}:{principal.name}")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: str) -> Callable[[Principal], Principal]:
    """Return a dependency that admits only roles granted ``permission`` (403 otherwise)."""
    roles, action_en, action_zh = PERMISSIONS[permission]
    assert roles, permission

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not allowed(principal.role, permission):
            raise Forbidden(action_en, action_zh, principal.role)
        return principal

    return dependency


def site_not_found(site_id: str) -> NotFound:
    return NotFound("Site", "场站", site_id)


def scoped_sites(conn: Connection, principal: Principal, site: str | None) -> list[str]:
    """Return the sites a list request covers: ``site`` if the caller may see it, else all theirs.

    A site outside the caller's scope answers exactly like a site that does not exist.
    """
    if site is None:
        return sorted(principal.sites)
    if not principal.sees(site):
        raise site_not_found(site)
    if conn.execute("SELECT 1 FROM sites WHERE site_id = %s", (site,)).fetchone() is None:
        raise site_not_found(site)
    return [site]
