"""Access tokens (JWT, HS256) for people, and API keys for integrators' systems."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

ALGORITHM = "HS256"
ISSUER = "kouan"
# API keys read "kouan_<key_id>_<secret>": the key id is stored in clear and
# identifies the row, only the secret's SHA-256 is stored.
API_KEY_PREFIX = "kouan_"
KEY_ID_BYTES = 6
SECRET_BYTES = 32


def load_jwt_secret(configured: str, home: Path) -> str:
    """Return the configured signing key, or the one kept under ``home``, creating it once."""
    if configured:
        return configured

    path = home / "secrets" / "api-jwt.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside and renamed into place, so that API processes starting at
        # the same moment all read one complete key.
        staging = path.with_name(f"{path.name}.{os.getpid()}")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip()


def issue_token(secret: str, username: str, role: str, ttl_s: int) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl_s)
    claims = {"sub": username, "role": role, "iss": ISSUER, "iat": now, "exp": expires, "typ": "access"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def decode_token(secret: str, token: str) -> str | None:
    """Return the token's username, or None when the token is invalid or expired."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "sub", "iat"]}
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        return None
    return claims["sub"]


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    key: str
    secret_sha256: bytes


def generate_api_key() -> NewApiKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewApiKey(key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", hashlib.sha256(secret.encode()).digest())


def split_api_key(key: str) -> tuple[str, bytes] | None:
    """Return (key_id, SHA-256 of the secret) of a well-formed key, else None."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        return None
    key_id, separator, secret = key[len(API_KEY_PREFIX) :].partition("_")
    if not separator or len(key_id) != 2 * KEY_ID_BYTES or not secret:
        return None
    return key_id, hashlib.sha256(secret.encode()).digest()


def secrets_match(stored: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(stored, presented)
