"""Device health seen from the collector: seq gaps, clock drift, security and full outboxes.

Called inside the writer's transaction: :func:`check_batch` after each batch is
written, :func:`check_status` for each status message. Alerts go through
``kouan.alerts`` with subject_kind ``device``, so one unresolved alert per rule and
device collects the repeats.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from psycopg import Connection
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.ingest import (
    BAD_SIGNATURE,
    DEVICE_DISABLED,
    DEVICE_MISMATCH,
    TAMPERED,
    UNKNOWN_DEVICE,
    Rejected,
)
from kouan.alerts import AlertSpec, clear_alert, raise_alert
from kouan.contract import split_topic

if TYPE_CHECKING:
    from collector.store import BatchResult

logger = logging.getLogger(__name__)

# Rows of event_keys read per step while advancing a device's contiguous_seq.
ADVANCE_STEP = 5_000


class HealthSettings(BaseSettings):
    """Limits of the device health checks (environment prefix ``KOUAN_``)."""

    model_config = SettingsConfigDict(env_prefix="KOUAN_", extra="ignore")

    clock_drift_limit_s: float = Field(
        default=120.0,
        ge=0,
        description="Device clock offset from the collector's clock that raises clock_drift",
    )
    seq_gap_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a gap in a device's seq may stay open before seq_gap is raised; "
        "redeliveries after a collector restart fill short-lived gaps",
    )


@lru_cache(maxsize=1)
def health_settings() -> HealthSettings:
    return HealthSettings()


# Quarantine reason code -> (rule code, Chinese message, English message).
SECURITY_RULES = {
    UNKNOWN_DEVICE: (
        "device_unknown",
        "未登记设备发送事件，已隔离",
        "Event from a device not in the registry; quarantined",
    ),
    DEVICE_DISABLED: (
        "device_unknown",
        "已停用设备发送事件，已隔离",
        "Event from a disabled device; quarantined",
    ),
    BAD_SIGNATURE: (
        "signature_invalid",
        "事件签名校验失败，已隔离",
        "Event signature does not verify; quarantined",
    ),
    DEVICE_MISMATCH: (
        "device_mismatch",
        "事件中的设备编号与发布客户端不符，已隔离",
        "Event device_id does not match the publishing client; quarantined",
    ),
    TAMPERED: (
        "event_tampered",
        "同一设备序号的事件内容被篡改，已隔离",
        "Same device seq arrived with different content; quarantined",
    ),
}


def check_batch(conn: Connection, result: BatchResult, now: datetime | None = None) -> None:
    """Raise security alerts for the batch's quarantine and check the seq of its devices.

    Clock drift from events is checked in ``collector.store``; here it is checked
    from status messages, whose ``clock`` is read when they are published.
    """
    _raise_security_alerts(conn, result.quarantined)
    last_received: dict[tuple[str, str], datetime] = {}
    for item in result.stored:
        key = (item.envelope.site_id, item.envelope.device_id)
        received = item.message.received_at
        if key not in last_received or received > last_received[key]:
            last_received[key] = received
    for (site_id, device_id), received in sorted(last_received.items()):
        check_seq(conn, site_id, device_id, now or received)


# --- security -------------------------------------------------------------------------


def _raise_security_alerts(conn: Connection, rejected: list[Rejected]) -> None:
    for item in rejected:
        rule = SECURITY_RULES.get(item.reason_code)
        where = split_topic(item.message.topic)
        if rule is None or where is None:
            continue

        site_id, topic_device, _ = where
        code, message_zh, message_en = rule
        raise_alert(
            conn,
            AlertSpec(
                site_id=site_id,
                rule_code=code,
                severity="critical",
                subject_kind="device",
                subject_id=topic_device,
                device_id=topic_device,
                message_zh=f"{message_zh}（设备 {topic_device}，序号 {item.seq}）",
                message_en=f"{message_en} (device {topic_device}, seq {item.seq})",
                evidence={
                    "reason_code": item.reason_code,
                    "reason": item.reason[:500],
                    "topic": item.message.topic,
                    "claimed_device_id": item.device_id,
                    "seq": item.seq,
                    "received_at": item.message.received_at.isoformat(),
                },
            ),
        )
        logger.warning(
            "Security alert %s for device %s seq %s: %s", code, topic_device, item.seq, item.reason[:200]
        )


# --- seq gaps -------------------------------------------------------------------------


def check_seq(conn: Connection, site_id: str, device_id: str, now: datetime) -> None:
    """Advance the device's gap-free seq and raise or clear ``seq_gap``."""
    row = conn.execute(
        "SELECT contiguous_seq, last_seq, gap_since FROM devices WHERE device_id = %s FOR UPDATE",
        (device_id,),
    ).fetchone()
    if row is None:
        return

    contiguous, last_seq, gap_since = row
    contiguous = _advance(conn, device_id, contiguous)
    if contiguous >= last_seq:
        conn.execute(
            "UPDATE devices SET contiguous_seq = %s, gap_since = NULL WHERE device_id = %s",
            (contiguous, device_id),
        )
        # seq_gap is raised only while gap_since is set, so without a gap in progress
        # there is no alert to clear and no statement to send.
        if gap_since is not None:
            clear_alert(conn, "seq_gap", "device", device_id)
        return

    (next_stored,) = conn.execute(
        "SELECT min(seq) FROM event_keys WHERE device_id = %s AND seq > %s", (device_id, contiguous)
    ).fetchone()
    gap_since = gap_since or now
    conn.execute(
        "UPDATE devices SET contiguous_seq = %s, gap_since = %s WHERE device_id = %s",
        (contiguous, gap_since, device_id),
    )
    if now - gap_since < timedelta(seconds=health_settings().seq_gap_grace_s):
        return

    first_missing, last_missing = contiguous + 1, (next_stored or last_seq + 1) - 1
    raise_alert(
        conn,
        AlertSpec(
            site_id=site_id,
            rule_code="seq_gap",
            severity="warning",
            subject_kind="device",
            subject_id=device_id,
            device_id=device_id,
            message_zh=f"设备 {device_id} 事件序号缺失：{first_missing} 至 {last_missing}",
            message_en=f"Device {device_id} is missing events seq {first_missing} to {last_missing}",
            evidence={
                "first_missing": first_missing,
                "last_missing": last_missing,
                "last_seq": last_seq,
                "gap_since": gap_since.isoformat(),
            },
        ),
    )


def _advance(conn: Connection, device_id: str, contiguous: int) -> int:
    """Return the highest seq up to which every seq of the device is stored."""
    while True:
        seqs = [
            seq
            for (seq,) in conn.execute(
                "SELECT seq FROM event_keys WHERE device_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (device_id, contiguous, ADVANCE_STEP),
            )
        ]
        for seq in seqs:
            if seq != contiguous + 1:
                return contiguous
            contiguous = seq
        if len(seqs) < ADVANCE_STEP:
            return contiguous


# --- clocks ---------------------------------------------------------------------------


def _raise_drift(
    conn: Connection, site_id: str, device_id: str, offset_s: float, evidence: dict[str, Any]
) -> None:
    """Raise ``clock_drift``; ``offset_s`` is receive time minus device time (negative: device ahead)."""
    direction_zh = "快" if offset_s < 0 else "慢"
    direction_en = "ahead of" if offset_s < 0 else "behind"
    raise_alert(
        conn,
        AlertSpec(
            site_id=site_id,
            rule_code="clock_drift",
            severity="warning",
            subject_kind="device",
            subject_id=device_id,
            device_id=device_id,
            message_zh=f"设备 {device_id} 时钟偏差：比采集服务器{direction_zh} {abs(offset_s):.0f} 秒",
            message_en=f"Device {device_id} clock is {abs(offset_s):.0f} s {direction_en} the collector's",
            evidence={
                **evidence,
                "offset_s": round(offset_s, 3),
                "limit_s": health_settings().clock_drift_limit_s,
            },
        ),
    )


# --- status messages ------------------------------------------------------------------


def check_status(
    conn: Connection, site_id: str, device_id: str, status: dict[str, Any], received_at: datetime
) -> None:
    """Check one status message against the device's previous one: outbox, clock and seq gaps."""
    row = conn.execute(
        "SELECT status FROM devices WHERE device_id = %s AND site_id = %s", (device_id, site_id)
    ).fetchone()
    if row is None or not isinstance(status, dict):
        return

    previous = row[0] if isinstance(row[0], dict) else {}
    _check_outbox(conn, site_id, device_id, status, previous)
    _check_status_clock(conn, site_id, device_id, status, previous, received_at)
    check_seq(conn, site_id, device_id, received_at)


def _check_outbox(
    conn: Connection, site_id: str, device_id: str, status: dict[str, Any], previous: dict[str, Any]
) -> None:
    rejected = _int(status.get("outbox_rejected"))
    newly_rejected = rejected - _int(previous.get("outbox_rejected"))
    became_full = bool(status.get("outbox_full")) and not previous.get("outbox_full")
    if newly_rejected <= 0 and not became_full:
        return

    depth, capacity = _int(status.get("outbox_depth")), _int(status.get("outbox_capacity"))
    raise_alert(
        conn,
        AlertSpec(
            site_id=site_id,
            rule_code="outbox_full",
            severity="critical",
            subject_kind="device",
            subject_id=device_id,
            device_id=device_id,
            message_zh=f"设备 {device_id} 本地缓存已满（{depth}/{capacity}），已拒收 {rejected} 条事件，"
            "请检查网络与采集服务",
            message_en=f"Device {device_id} outbox full ({depth}/{capacity}); {rejected} events rejected. "
            "Check the link to the broker and the collector.",
            evidence={
                "outbox_depth": depth,
                "outbox_capacity": capacity,
                "outbox_rejected": rejected,
                "newly_rejected": max(newly_rejected, 0),
                "oldest_pending_s": status.get("oldest_pending_s"),
            },
        ),
    )
    logger.error("Device %s: outbox full (%d/%d), %d events rejected", device_id, depth, capacity, rejected)


def _check_status_clock(
    conn: Connection,
    site_id: str,
    device_id: str,
    status: dict[str, Any],
    previous: dict[str, Any],
    received_at: datetime,
) -> None:
    clock_text = status.get("clock")
    # A retained status replayed to a (re)subscribing collector carries an old clock;
    # the one already stored is that replay, not a new reading.
    if (
        not isinstance(clock_text, str)
        or clock_text == previous.get("clock")
        or status.get("state") != "online"
    ):
        return
    try:
        clock = datetime.fromisoformat(clock_text)
    except ValueError:
        logger.warning(
            "Device %s: status clock %r is not RFC 3339; ignored", device_id, json.dumps(clock_text)[:60]
        )
        return
    if clock.tzinfo is None:
        return

    offset_s = (received_at - clock).total_seconds()
    if abs(offset_s) > health_settings().clock_drift_limit_s:
        _raise_drift(conn, site_id, device_id, offset_s, {"source": "status", "clock": clock_text})
    else:
        clear_alert(conn, "clock_drift", "device", device_id)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
