"""Create users and API keys (``kouan user add``, ``kouan apikey create``, the demo)."""

from __future__ import annotations

from psycopg import Connection

from api.security.passwords import hash_password
from api.security.roles import ROLES
from api.security.tokens import generate_api_key
from kouan import audit


class AccountError(ValueError):
    """A user or key cannot be created as requested."""


def _check(conn: Connection, role: str, sites: list[str]) -> None:
    if role not in ROLES:
        raise AccountError(f"Role {role!r} is not one of {', '.join(ROLES)}")
    if not sites:
        raise AccountError("At least one site is required; pass --site SITE")

    known = {row[0] for row in conn.execute("SELECT site_id FROM sites WHERE site_id = ANY(%s)", (sites,))}
    missing = sorted(set(sites) - known)
    if missing:
        raise AccountError(f"Site {', '.join(missing)} is not registered; create it first")


def add_user(
    conn: Connection,
    username: str,
    password: str,
    role: str,
    sites: list[str],
    *,
    actor: str,
    display_name: str | None = None,
) -> None:
    """Create or replace a user (password, role, sites) and audit it."""
    _check(conn, role, sites)
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from exc

    with conn.transaction():
        conn.execute(
            """
            INSERT INTO api_users (username, password_hash, role, sites, display_name)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                role = EXCLUDED.role, sites = EXCLUDED.sites, display_name = EXCLUDED.display_name,
                enabled = true, updated_at = now()
            """,
            (username, password_hash, role, sorted(set(sites)), display_name),
        )
        audit.append(
            conn, actor, "user.put", f"user:{username}", details={"role": role, "sites": sorted(set(sites))}
        )


def create_api_key(conn: Connection, name: str, role: str, sites: list[str], *, actor: str) -> str:
    """Create an API key, audit it and return the key; only its hash is stored."""
    _check(conn, role, sites)
    new = generate_api_key()
    with conn.transaction():
        taken = conn.execute(
            "SELECT 1 FROM api_keys WHERE name = %s AND revoked_at IS NULL", (name,)
        ).fetchone()
        if taken:
            raise AccountError(f"API key {name!r} exists; revoke it or choose another name")
        conn.execute("DELETE FROM api_keys WHERE name = %s AND revoked_at IS NOT NULL", (name,))
        conn.execute(
            "INSERT INTO api_keys (key_id, name, secret_sha256, role, sites) VALUES (%s, %s, %s, %s, %s)",
            (new.key_id, name, new.secret_sha256, role, sorted(set(sites))),
        )
        audit.append(
            conn,
            actor,
            "apikey.create",
            f"apikey:{name}",
            details={"key_id": new.key_id, "role": role, "sites": sorted(set(sites))},
        )
    return new.key


def revoke_api_key(conn: Connection, name: str, *, actor: str) -> bool:
    with conn.transaction():
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL "
            "RETURNING key_id, sites",
            (name,),
        ).fetchone()
        if row is None:
            return False
        audit.append(
            conn, actor, "apikey.revoke", f"apikey:{name}", details={"key_id": row[0], "sites": list(row[1])}
        )
    return True
