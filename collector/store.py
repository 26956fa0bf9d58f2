"""Write one batch of inspected messages in one transaction.

The batch's events go in with COPY (text format: psycopg's binary COPY needs an
exact dumper per column and leaves a partial row behind when one fails), after the
ordinary ``event_keys`` table has decided which (device_id, seq) are new. Visit
state is updated in the same transaction, so a receipt sent after the commit
covers the event and everything concluded from it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg import Connection
from psycopg.types.json import Jsonb

from collector import health
from collector.correlation.core import Decision, combine, unreadable_reason
from collector.correlation.model import Observation
from collector.correlation.rules import RuleSettings, passage_findings
from collector.correlation.shell import Correlation, apply_observations
from collector.decisions import (
    asks_for_decision,
    make_command,
    record_decisions,
    stale_lane_sensors,
    stored_commands,
)
from collector.ingest import TAMPERED, Accepted, Rejected
from kouan.alerts import AlertSpec, raise_alerts
from kouan.contract import Command

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


@dataclass(frozen=True)
class DecisionPolicy:
    """Rule settings and decision limits for ``write_batch``, taken from CollectorSettings."""

    rules: RuleSettings = field(default_factory=RuleSettings)
    stale_sensor_s: float = 120.0
    decision_valid_s: float = 30.0
    clock_drift_limit_s: float = 120.0


@dataclass
class BatchResult:
    stored: list[Accepted] = field(default_factory=list)
    duplicates: list[Accepted] = field(default_factory=list)
    quarantined: list[Rejected] = field(default_factory=list)
    visits_written: int = 0
    alerts_raised: int = 0
    # Gate decisions to publish after the commit: new ones and, for a redelivered
    # asking passage, the one recorded the first time.
    commands: list[tuple[str, Command]] = field(default_factory=list)

    def receipted(self) -> dict[tuple[str, str], list[int]]:
        """Return the seqs to confirm per (site_id, device_id): new and redelivered events."""
        seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in (*self.stored, *self.duplicates):
            seqs[(item.envelope.site_id, item.envelope.device_id)].append(item.envelope.seq)
        return seqs


def write_batch(
    conn: Connection,
    accepted: list[Accepted],
    rejected: list[Rejected],
    policy: DecisionPolicy | None = None,
    preset: dict[str, Command] | None = None,
) -> BatchResult:
    """Store a batch; the caller commits. Returns what was stored, skipped and quarantined.

    ``preset`` maps a passage's event id to a decision already sent to its lane: the
    manual one sent while the database was unreachable. That decision is recorded
    instead of a new one, so every asking passage has exactly one.
    """
    policy = policy or DecisionPolicy()
    now = utcnow()
    result = BatchResult(quarantined=list(rejected))
    unique, repeats = _split_repeats_in_batch(accepted)
    new_keys = _claim_keys(conn, unique)

    fresh = [item for item in unique if _key(item) in new_keys]
    _classify_known(conn, [item for item in unique if _key(item) not in new_keys] + repeats, result)
    result.stored = fresh

    _copy_events(conn, fresh)
    # In pipeline mode a statement whose result is not read goes out with the next
    # one, so writes cost no round trip of their own; a read still waits for its
    # result. This matters most to the decision path, which writes one event at a time.
    with conn.pipeline():
        correlation = _update_visits(conn, fresh, policy, now)
        result.visits_written = correlation.visits_written
        result.alerts_raised = correlation.alerts_raised
        result.alerts_raised += _raise_passage_alerts(conn, fresh, policy.rules)
        result.commands = _decide(conn, fresh, correlation, policy, now, preset or {})
        result.commands += _repeat_decisions(conn, result.duplicates)
        _update_devices(conn, fresh)
        _raise_clock_ahead(conn, fresh, policy.clock_drift_limit_s)
        _insert_quarantine(conn, result.quarantined)
        health.check_batch(conn, result)
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
                    _document_text(item),
                    Jsonb(item.derived),
                )
            )


def _document_text(item: Accepted) -> str | Jsonb:
    """Return the envelope as received, for the ``envelope`` jsonb column.

    The document is the parsed payload, unchanged, so the payload's own text gives
    the same jsonb value and saves encoding it again. ``json.loads`` also reads
    UTF-16 and UTF-32, and such a payload is encoded again.
    """
    encoding = json.detect_encoding(item.message.payload)
    if encoding in ("utf-8", "utf-8-sig"):
        return item.message.payload.decode(encoding)
    return Jsonb(item.document)


def _asking(item: Accepted) -> bool:
    return asks_for_decision(item.envelope.kind, item.envelope.payload)


def _update_visits(
    conn: Connection, items: list[Accepted], policy: DecisionPolicy, now: datetime
) -> Correlation:
    by_site: dict[str, dict[str, list[Observation]]] = defaultdict(lambda: defaultdict(list))
    stale: dict[str, tuple[str, ...]] = {}
    for item in items:
        for number, observation in item.observations.items():
            by_site[item.envelope.site_id][number].append(observation)
        if _asking(item):
            stale[str(item.envelope.event_id)] = stale_lane_sensors(
                conn,
                item.envelope.site_id,
                str(item.envelope.payload.get("lane_id")),
                item.envelope.device_id,
                policy.stale_sensor_s,
                now,
            )

    total = Correlation()
    for site_id, observations in sorted(by_site.items()):
        found = apply_observations(conn, site_id, dict(observations), policy.rules, now, stale)
        total.visits_written += found.visits_written
        total.alerts_raised += found.alerts_raised
        total.alerts_cleared += found.alerts_cleared
        for event_id, decisions in found.decisions.items():
            total.decisions[event_id].extend(decisions)
    return total


def _decide(
    conn: Connection,
    items: list[Accepted],
    correlation: Correlation,
    policy: DecisionPolicy,
    now: datetime,
    preset: dict[str, Command],
) -> list[tuple[str, Command]]:
    """Build and record one decision per fresh asking passage."""
    commands: dict[str, list[tuple[str, Command]]] = defaultdict(list)
    for item in items:
        if not _asking(item):
            continue
        event_id = str(item.envelope.event_id)
        command = preset.get(event_id) or _command_for(
            item, correlation.decisions.get(event_id, []), policy, now
        )
        commands[item.envelope.site_id].append((event_id, command))

    for site_id, decided in commands.items():
        record_decisions(conn, site_id, decided)
    return [(site_id, command) for site_id, decided in commands.items() for _, command in decided]


def _command_for(item: Accepted, decisions: list[Decision], policy: DecisionPolicy, now: datetime) -> Command:
    records = item.derived.get("containers", [])
    if not records or any(not record.get("valid") for record in records):
        decisions = [*decisions, Decision("manual", (unreadable_reason(),))]
    payload = item.envelope.payload
    return make_command(
        item.envelope.device_id,
        str(payload.get("lane_id")),
        str(payload.get("passage_id")),
        sorted(item.observations),
        combine(decisions),
        now,
        policy.decision_valid_s,
    )


def _repeat_decisions(conn: Connection, duplicates: list[Accepted]) -> list[tuple[str, Command]]:
    asking = {str(item.envelope.event_id): item.envelope.site_id for item in duplicates if _asking(item)}
    found = stored_commands(conn, list(asking))
    return [(asking[event_id], command) for event_id, command in found.items()]


def _raise_passage_alerts(conn: Connection, items: list[Accepted], rules: RuleSettings) -> int:
    """Raise the passage rules (unreadable container number, low OCR confidence) per event."""
    specs = []
    for item in items:
        if item.envelope.kind not in ("gate.passage", "scan.result"):
            continue
        event_id = str(item.envelope.event_id)
        for finding in passage_findings(item.derived, rules):
            specs.append(
                AlertSpec(
                    site_id=item.envelope.site_id,
                    rule_code=finding.rule_code,
                    severity=finding.severity,
                    subject_kind="passage",
                    subject_id=event_id,
                    message_zh=finding.message_zh,
                    message_en=finding.message_en,
                    evidence={
                        "event_ids": [event_id],
                        "passage_id": item.envelope.payload.get("passage_id"),
                        **finding.evidence,
                    },
                    device_id=item.envelope.device_id,
                    lane_id=item.envelope.payload.get("lane_id"),
                    container_number=(item.container_numbers or [None])[0],
                )
            )
    raise_alerts(conn, specs)
    return len(specs)


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


def _raise_clock_ahead(conn: Connection, items: list[Accepted], limit_s: float) -> None:
    """Raise clock_drift for a device whose events were sent "in the future" beyond the limit.

    Only a clock ahead of the collector's is concluded from events: an event resent
    from the outbox after an outage keeps its first ``sent_at``, so a device that looks
    behind may only have been offline. A clock behind is caught from status messages
    (``collector.health``), which also clears the alert once the clock is right.
    """
    ahead: dict[str, tuple[float, Accepted]] = {}
    for item in items:
        offset_s = (item.message.received_at - item.envelope.sent_at).total_seconds()
        current = ahead.get(item.envelope.device_id)
        if offset_s < -limit_s and (current is None or offset_s < current[0]):
            ahead[item.envelope.device_id] = (offset_s, item)
    if not ahead:
        return

    open_drift = {
        device_id
        for (device_id,) in conn.execute(
            "SELECT subject_id FROM alerts WHERE rule_code = 'clock_drift' AND subject_kind = 'device' "
            "AND subject_id = ANY(%s) AND status <> 'resolved'",
            (sorted(ahead),),
        )
    }
    specs = []
    for device_id, (offset_s, item) in sorted(ahead.items()):
        if device_id in open_drift:
            continue
        specs.append(
            AlertSpec(
                site_id=item.envelope.site_id,
                rule_code="clock_drift",
                severity="warning",
                subject_kind="device",
                subject_id=device_id,
                device_id=device_id,
                message_zh=f"设备 {device_id} 时钟偏差：比采集服务器快 {abs(offset_s):.0f} 秒",
                message_en=f"Device {device_id} clock is {abs(offset_s):.0f} s ahead of the collector's",
                evidence={
                    "source": "event",
                    "event_ids": [str(item.envelope.event_id)],
                    "sent_at": item.envelope.sent_at.isoformat(),
                    "received_at": item.message.received_at.isoformat(),
                    "offset_s": round(offset_s, 3),
                    "limit_s": limit_s,
                },
            )
        )
    raise_alerts(conn, specs)


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
