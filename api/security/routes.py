from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field

from api.db import Db
from api.errors import Unauthenticated
from api.security.auth import CurrentPrincipal
from api.security.passwords import verify_password
from api.security.roles import PERMISSIONS
from api.security.tokens import issue_token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = Field(description="Always bearer")
    expires_in: int = Field(description="Seconds until the token expires")


class PrincipalPublic(BaseModel):
    kind: str = Field(description="user or api_key")
    name: str
    role: str
    sites: list[str]
    permissions: list[str]


@router.post("/token", response_model=TokenPublic)
def login(
    request: Request,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
    conn: Db,
) -> dict:
    """Exchange a username and password for a bearer token (OAuth2 password flow)."""
    client = request.client.host if request.client else "unknown"
    request.app.state.login_limiter.check(f"{client}/{username}")

    row = conn.execute(
        "SELECT password_hash, role FROM api_users WHERE username = %s AND enabled", (username,)
    ).fetchone()
    if not verify_password(row[0] if row else None, password) or row is None:
        raise Unauthenticated(
            "invalid_credentials",
            "Username or password is wrong.",
            "用户名或密码错误。",
        )

    settings = request.app.state.settings
    token, _expires = issue_token(request.app.state.jwt_secret, username, row[1], settings.token_ttl_s)
    return {"access_token": token, "token_type": "bearer", "expires_in": settings.token_ttl_s}


@router.get("/me", response_model=PrincipalPublic)
def me(principal: CurrentPrincipal) -> dict:
    """Return the caller: role, sites and what the role may do."""
    return {
        "kind": principal.kind,
        "name": principal.name,
        "role": principal.role,
        "sites": sorted(principal.sites),
        "permissions": sorted(name for name, (roles, _, _) in PERMISSIONS.items() if principal.role in roles),
    }
