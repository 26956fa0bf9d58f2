"""The append-only, hash-chained audit log of human actions.

Each record's SHA-256 covers its canonical content and the previous record's hash.
Appends take a transaction-scoped advisory lock so that the chain stays linear when
several API processes write at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

# Arbitrary constant key of the advisory lock that serialises audit appends.
AUDIT_LOCK_KEY = 0x6B6F75616E  # "kouan"


def record_hash(
    prev_hash: bytes | None,
    recorded_at: datetime,
    actor: str,
    action: str,
    subject: str,
    site_id: str | None,
    reason: str | None,
    details: dict[str, Any],
) -> bytes:
    # In UTC, because the database returns timestamptz in the session's time zone and
    # the verifier's session need not use the writer's.
    content = json.dumps(
        {
            "recorded_at": recorded_at.astimezone(UTC).isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "site_id": site_id,
            "reason": reason,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return hashlib.sha256((prev_hash or b"") + content).digest()


def append(
    conn: Connection,
    actor: str,
    action: str,
    subject: str,
    *,
    site_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one record in the caller's transaction; return its id."""
    details = details or {}
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK_KEY,))
    last = conn.execute("SELECT hash FROM audit_log ORDER BY audit_id DESC LIMIT 1").fetchone()
    prev_hash = bytes(last[0]) if last else None
    (now,) = conn.execute("SELECT date_trunc('milliseconds', clock_timestamp())").fetchone()  # type: ignore[misc]
    digest = record_hash(prev_hash, now, actor, action, subject, site_id, reason, details)
    row = conn.execute(
        """
        INSERT INTO audit_log (recorded_at, actor, action, subject, site_id, reason, details, prev_hash, hash)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING audit_id
        """,
        (now, actor, action, subject, site_id, reason, Jsonb(details), prev_hash, digest),
    ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class ChainReport:
    records: int
    first_broken_id: int | None
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def verify(conn: Connection) -> ChainReport:
    """Recompute every hash in order; report the first record that does not match."""
    prev_hash: bytes | None = None
    count = 0
    # A named (server-side) cursor streams the log and needs a transaction block,
    # also on an autocommit connection.
    with conn.transaction(), conn.cursor(name="audit_verify") as cursor:
        cursor.execute(
            "SELECT audit_id, recorded_at, actor, action, subject, site_id, reason, details, prev_hash, hash "
            "FROM audit_log ORDER BY audit_id"
        )
        for (
            audit_id,
            recorded_at,
            actor,
            action,
            subject,
            site_id,
            reason,
            details,
            stored_prev,
            stored,
        ) in cursor:
            count += 1
            if (bytes(stored_prev) if stored_prev is not None else None) != prev_hash:
                return ChainReport(count, audit_id, "prev_hash does not match the previous record's hash")
            expected = record_hash(prev_hash, recorded_at, actor, action, subject, site_id, reason, details)
            if expected != bytes(stored):
                return ChainReport(count, audit_id, "content does not match its hash")
            prev_hash = expected
    return ChainReport(count, None, None)
