"""Write one batch of inspected messages in one transaction.

The batch's events go in with COPY (text format: psycopg's binary COPY needs an
exact dumper per column and leaves a partial row behind when one fails), after the
ordinary ``event_keys`` table has decided which (device_id, seq) are new. Visit
state is updated in the same transaction, so a receipt sent after the commit
covers the event and everything concluded from it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg import Connection
from psycopg.types.json import Jsonb

from collector.correlation.model import Observation
from collector.correlation.shell import apply_observations
from collector.ingest import TAMPERED, Accepted, Rejected

logger = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "occurred_at",
    "device_id",
    "seq",
    "event_id",
    "kind",
    "site_id",
    "lane_id",
    "recorded_at",
    "sent_at",
    "received_at",
    "container_numbers",
    "content_sha256",
    "envelope",
    "derived",
)


@dataclass
class BatchResult:
    stored: list[Accepted] = field(default_factory=list)
    duplicates: list[Accepted] = field(default_factory=list)
    quarantined: list[Rejected] = field(default_factory=list)
    visits_written: int = 0

    def receipted(self) -> dict[tuple[str, str], list[int]]:
        """Return the seqs to confirm per (site_id, device_id): new and redelivered events."""
        seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in (*self.stored, *self.duplicates):
            seqs[(item.envelope.site_id, item.envelope.device_id)].append(item.envelope.seq)
        return seqs


def write_batch(conn: Connection, accepted: list[Accepted], rejected: list[Rejected]) -> BatchResult:
    """Store a batch; the caller commits. Returns what was stored, skipped and quarantined."""
    result = BatchResult(quarantined=list(rejected))
    unique, repeats = _split_repeats_in_batch(accepted)
    new_keys = _claim_keys(conn, unique)

    fresh = [item for item in unique if _key(item) in new_keys]
    _classify_known(conn, [item for item in unique if _key(item) not in new_keys] + repeats, result)
    result.stored = fresh

    _copy_events(conn, fresh)
    result.visits_written = _update_visits(conn, fresh)
    _update_devices(conn, fresh)
    _insert_quarantine(conn, result.quarantined)
    return result


def _key(item: Accepted) -> tuple[str, int]:
    return (item.envelope.device_id, item.envelope.seq)


def _split_repeats_in_batch(accepted: list[Accepted]) -> tuple[list[Accepted], list[Accepted]]:
    seen: set[tuple[str, int]] = set()
    unique, repeats = [], []
    for item in accepted:
        (repeats if _key(item) in seen else unique).append(item)
        seen.add(_key(item))
    return unique, repeats


def _claim_keys(conn: Connection, items: list[Accepted]) -> set[tuple[str, int]]:
    if not items:
        return set()

    rows = conn.execute(
        """
        INSERT INTO event_keys (device_id, seq, event_id, occurred_at, content_sha256)
        SELECT * FROM unnest(%s::text[], %s::bigint[], %s::uuid[], %s::timestamptz[], %s::bytea[])
        ON CONFLICT (device_id, seq) DO NOTHING
        RETURNING device_id, seq
        """,
        (
            [item.envelope.device_id for item in items],
            [item.envelope.seq for item in items],
            [item.envelope.event_id for item in items],
            [item.envelope.occurred_at for item in items],
            [item.content_sha256 for item in items],
        ),
    ).fetchall()
    return {(device_id, seq) for device_id, seq in rows}


def _classify_known(conn: Connection, items: list[Accepted], result: BatchResult) -> None:
    """Split events whose (device_id, seq) is already stored into redeliveries and tampering."""
    if not items:
        return

    rows = conn.execute(
        """
        SELECT device_id, seq, content_sha256 FROM event_keys
        WHERE (device_id, seq) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))
        """,
        ([item.envelope.device_id for item in items], [item.envelope.seq for item in items]),
    ).fetchall()
    stored_hash = {(device_id, seq): digest for device_id, seq, digest in rows}

    for item in items:
        if stored_hash.get(_key(item)) == item.content_sha256:
            result.duplicates.append(item)
            continue
        logger.warning(
            "Tamper: device %s seq %d arrived again with different content",
            item.envelope.device_id,
            item.envelope.seq,
        )
        result.quarantined.append(
            Rejected(
                item.message,
                TAMPERED,
                f"seq {item.envelope.seq} of device {item.envelope.device_id} is already stored "
                "with different content",
                item.envelope.device_id,
                item.envelope.seq,
            )
        )


def _copy_events(conn: Connection, items: list[Accepted]) -> None:
    if not items:
        return

    with conn.cursor() as cursor, cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
        for item in items:
            envelope = item.envelope
            copy.write_row(
                (
                    envelope.occurred_at,
                    envelope.device_id,
                    envelope.seq,
                    envelope.event_id,
                    envelope.kind,
                    envelope.site_id,
                    item.envelope.payload.get("lane_id"),
                    envelope.recorded_at,
                    envelope.sent_at,
                    item.message.received_at,
                    item.container_numbers,
                    item.content_sha256,
                    Jsonb(item.document),
                    Jsonb(item.derived),
                )
            )


def _update_visits(conn: Connection, items: list[Accepted]) -> int:
    by_site: dict[str, dict[str, list[Observation]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        for number, observation in item.observations.items():
            by_site[item.envelope.site_id][number].append(observation)

    return sum(
        apply_observations(conn, site_id, dict(observations))
        for site_id, observations in sorted(by_site.items())
    )


def _update_devices(conn: Connection, items: list[Accepted]) -> None:
    latest: dict[str, Accepted] = {}
    for item in items:
        current = latest.get(item.envelope.device_id)
        if current is None or item.envelope.seq > current.envelope.seq:
            latest[item.envelope.device_id] = item

    for device_id, item in sorted(latest.items()):
        offset_ms = (item.message.received_at - item.envelope.sent_at).total_seconds() * 1000
        conn.execute(
            """
            UPDATE devices SET last_seen_at = greatest(last_seen_at, %s),
                   last_seq = greatest(last_seq, %s), clock_offset_ms = %s
            WHERE device_id = %s
            """,
            (item.message.received_at, item.envelope.seq, offset_ms, device_id),
        )


def _insert_quarantine(conn: Connection, rejected: list[Rejected]) -> None:
    if not rejected:
        return

    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO quarantine (received_at, topic, client_device, device_id, seq,
                                    reason_code, reason, raw)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    item.message.received_at,
                    item.message.topic,
                    _topic_device(item.message.topic),
                    item.device_id,
                    item.seq,
                    item.reason_code,
                    item.reason[:2000],
                    item.message.payload,
                )
                for item in rejected
            ],
        )


def _topic_device(topic: str) -> str | None:
    parts = topic.split("/")
    return parts[3] if len(parts) == 5 else None


def utcnow() -> datetime:
    return datetime.now(UTC)
