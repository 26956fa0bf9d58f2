"""The edge's durable outbox: SQLite in WAL mode with synchronous commits.

An event is committed here before the device adapter is told it was accepted, and
it is deleted only when the collector's receipt for its ``seq`` arrives. ``seq``
is allocated in the same transaction as the insert, so numbers are gap-free and
never reused, even across a crash.

The envelope is signed at its first transmission (``sent_at`` is part of the signed
bytes) and the signed bytes are committed before they are published, so every
resend is byte-identical and the collector recognises it as a redelivery.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY,
    document     TEXT NOT NULL,     -- the envelope without sent_at and signature
    signed       BLOB,              -- the bytes published, once first sent
    accepted_at  REAL NOT NULL,     -- unix time the adapter's event was committed
    sent_at      REAL
);
CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', 0);
INSERT OR IGNORE INTO counters (name, value) VALUES ('rejected_full', 0);
"""


class OutboxError(RuntimeError):
    """The outbox could not accept or update an event."""


class OutboxFull(OutboxError):
    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"Outbox full: {capacity} events await the collector's receipt. "
            "The event was rejected; check the link to the broker and the collector."
        )
        self.capacity = capacity


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    document: dict[str, Any]
    signed: bytes | None


class Outbox:
    def __init__(self, path: Path, capacity: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so an accepted event survives a
        # power cut, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        # The depth is kept as a counter: count(*) reads the whole table, which at
        # 100,000 pending events costs more than the insert it guards.
        self._db.execute("INSERT OR IGNORE INTO counters (name, value) SELECT 'depth', count(*) FROM outbox")

    def append(self, build: Callable[[int], dict[str, Any]]) -> int:
        """Allocate the next seq, build the document for it and commit it; return the seq."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (depth,) = self._db.execute("SELECT value FROM counters WHERE name = 'depth'").fetchone()
                if depth >= self.capacity:
                    # The rejection is counted durably, so the status message reports it
                    # even when the agent restarts before it reconnects.
                    self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'rejected_full'")
                    self._db.execute("COMMIT")
                    raise OutboxFull(self.capacity)
                (last_seq,) = self._db.execute(
                    "SELECT value FROM counters WHERE name = 'last_seq'"
                ).fetchone()
                seq = last_seq + 1
                document = build(seq)
                self._db.execute(
                    "INSERT INTO outbox (seq, document, accepted_at) VALUES (?, ?, ?)",
                    (seq, json.dumps(document, ensure_ascii=False), time.time()),
                )
                self._db.execute("UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,))
                self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'depth'")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return seq

    def pending(self, after_seq: int, limit: int) -> list[PendingEvent]:
        """Return up to ``limit`` events with seq above ``after_seq``, in seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, document, signed FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [PendingEvent(seq, json.loads(document), signed) for seq, document, signed in rows]

    def mark_signed(self, signed: list[tuple[int, bytes]], sent_at: float) -> None:
        """Commit the signed bytes of first transmissions before they are published."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE outbox SET signed = ?, sent_at = ? WHERE seq = ? AND signed IS NULL",
                [(payload, sent_at, seq) for seq, payload in signed],
            )
            self._db.execute("COMMIT")

    def delete(self, seqs: list[int]) -> int:
        """Delete receipted events; return how many were still in the outbox."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])
            deleted = cursor.rowcount
            self._db.execute("UPDATE counters SET value = value - ? WHERE name = 'depth'", (deleted,))
            self._db.execute("COMMIT")
        return deleted

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM counters WHERE name = 'depth'").fetchone()[0])

    def oldest_pending_age_s(self) -> float | None:
        with self._lock:
            # seq order is acceptance order, so the lowest seq is the oldest event.
            row = self._db.execute("SELECT accepted_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else max(0.0, time.time() - row[0])

    def last_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM counters WHERE name = 'last_seq'").fetchone()[0])

    def rejected_total(self) -> int:
        """Return how many events were ever rejected because the outbox was full."""
        with self._lock:
            return int(
                self._db.execute("SELECT value FROM counters WHERE name = 'rejected_full'").fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
