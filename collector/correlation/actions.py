"""Human actions on alerts, decisions and reads, each audited in the caller's transaction.

The API calls these with its own connection. Each function validates its input,
changes the tables inside ``conn.transaction()`` (a savepoint when the caller already
has a transaction open) and appends one record to the hash-chained audit log in that
same transaction, so an action and its audit record commit together or not at all.
Nothing is overwritten: an override is a new decision that points to the old one,
and a correction is a new ``read.correction`` event that points to the original.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from collector.correlation.core import Decision, Reason
from collector.correlation.model import Observation
from collector.correlation.rules import CONTAINER_NUMBER_UNREADABLE
from collector.decisions import make_command, record_decisions
from collector.ingest import Accepted, Message, observations_of
from collector.store import write_batch
from kouan import audit, identifiers, reads
from kouan.contract import Command, Envelope, ReadCorrection, content_sha256, events_topic

logger = logging.getLogger(__name__)

# Device id of the events Kouan writes itself (officers' corrections). They are not
# signed by a device key: only this module writes them, inside the database.
INTERNAL_DEVICE_ID = "kouan-corrections"
INTERNAL_SIGNATURE = "kouan-internal-unsigned"
# Arbitrary constant key of the advisory lock that serialises seq allocation of
# INTERNAL_DEVICE_ID across processes.
INTERNAL_SEQ_LOCK_KEY = 0x6B6F75616E02
DEFAULT_OVERRIDE_VALID_S = 30.0


class ActionError(Exception):
    """A rejected human action, with a stable code and a message in Chinese and English."""

    def __init__(self, code: str, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en


class ActionNotFound(ActionError, LookupError):
    """The alert, decision or event named by the action does not exist."""


class InvalidAction(ActionError, ValueError):
    """The action's input is invalid, or its subject is in a state that does not allow it."""


def _check_reason(user: str, reason: str) -> None:
    if not user or not user.strip():
        raise InvalidAction("user_required", "必须注明操作人员。", "The acting user is missing.")
    if not reason or not reason.strip():
        raise InvalidAction(
            "reason_required", "必须填写操作原因。", "A reason is required; state why the action is taken."
        )


# --- alerts ---------------------------------------------------------------------------


def acknowledge_alert(conn: Connection, alert_id: int, user: str, reason: str) -> None:
    """Mark an open alert as acknowledged by ``user``."""
    _check_reason(user, reason)
    with conn.transaction():
        site_id, rule_code, status = _lock_alert(conn, alert_id)
        if status != "open":
            raise InvalidAction(
                "alert_not_open",
                f"告警 {alert_id} 当前状态为 {status}，只能确认未处理的告警。",
                f"Alert {alert_id} is {status}; only an open alert can be acknowledged.",
            )
        conn.execute(
            """
            UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(),
                              acknowledged_by = %s, acknowledge_reason = %s
            WHERE alert_id = %s
            """,
            (user, reason.strip(), alert_id),
        )
        audit.append(
            conn,
            user,
            "alert.acknowledge",
            f"alert:{alert_id}",
            site_id=site_id,
            reason=reason.strip(),
            details={"rule_code": rule_code, "previous_status": status},
        )
    logger.info("Alert %d (%s) acknowledged by %s", alert_id, rule_code, user)


def resolve_alert(conn: Connection, alert_id: int, user: str, reason: str) -> None:
    """Resolve an open or acknowledged alert; the same evidence does not reopen it."""
    _check_reason(user, reason)
    with conn.transaction():
        site_id, rule_code, status = _lock_alert(conn, alert_id)
        if status == "resolved":
            raise InvalidAction(
                "alert_already_resolved",
                f"告警 {alert_id} 已经处理完毕。",
                f"Alert {alert_id} is already resolved.",
            )
        conn.execute(
            """
            UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = %s, resolve_reason = %s
            WHERE alert_id = %s
            """,
            (user, reason.strip(), alert_id),
        )
        audit.append(
            conn,
            user,
            "alert.resolve",
            f"alert:{alert_id}",
            site_id=site_id,
            reason=reason.strip(),
            details={"rule_code": rule_code, "previous_status": status},
        )
    logger.info("Alert %d (%s) resolved by %s", alert_id, rule_code, user)


def _lock_alert(conn: Connection, alert_id: int) -> tuple[str, str, str]:
    row = conn.execute(
        "SELECT site_id, rule_code, status FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,)
    ).fetchone()
    if row is None:
        raise ActionNotFound(
            "alert_not_found", f"告警 {alert_id} 不存在。", f"Alert {alert_id} was not found."
        )
    return row[0], row[1], row[2]


# --- decisions ------------------------------------------------------------------------


def override_decision(
    conn: Connection,
    command_id: uuid.UUID | str,
    officer: str,
    reason: str,
    valid_s: float = DEFAULT_OVERRIDE_VALID_S,
) -> Command:
    """Record a release that overrides a hold (or a manual decision); return it to publish.

    The caller publishes the returned Command to the lane's commands topic after the
    commit. The overridden decision stays as it was.
    """
    _check_reason(officer, reason)
    with conn.transaction():
        row = conn.execute(
            """
            SELECT site_id, lane_id, device_id, passage_id, event_id, container_numbers, decision, reasons
            FROM gate_decisions WHERE command_id = %s FOR UPDATE
            """,
            (str(command_id),),
        ).fetchone()
        if row is None:
            raise ActionNotFound(
                "decision_not_found",
                f"闸口指令 {command_id} 不存在。",
                f"Decision {command_id} was not found.",
            )
        site_id, lane_id, device_id, passage_id, event_id, numbers, decision, reasons = row
        _check_overridable(conn, command_id, decision)

        release = Decision(
            "release",
            (
                Reason(
                    "officer_override",
                    f"关员 {officer} 人工放行：{reason.strip()}",
                    f"Released by officer {officer}: {reason.strip()}",
                ),
            ),
        )
        command = make_command(
            device_id, lane_id, passage_id, list(numbers), release, datetime.now(UTC), valid_s
        )
        record_decisions(
            conn,
            site_id,
            [(str(event_id) if event_id else None, command)],
            officer,
            uuid.UUID(str(command_id)),
        )  # type: ignore[list-item]
        audit.append(
            conn,
            officer,
            "decision.override",
            f"decision:{command_id}",
            site_id=site_id,
            reason=reason.strip(),
            details={
                "overridden_decision": decision,
                "overridden_reasons": [item.get("code") for item in reasons],
                "new_command_id": str(command.command_id),
                "lane_id": lane_id,
                "passage_id": passage_id,
                "container_numbers": list(numbers),
            },
        )
    logger.info(
        "Decision %s (%s) overridden by %s with release %s", command_id, decision, officer, command.command_id
    )
    return command


def _check_overridable(conn: Connection, command_id: uuid.UUID | str, decision: str) -> None:
    if decision == "release":
        raise InvalidAction(
            "decision_not_overridable",
            f"闸口指令 {command_id} 已是放行，无需人工放行。",
            f"Decision {command_id} is already a release; only a hold or a manual decision "
            "can be overridden.",
        )
    overridden = conn.execute(
        "SELECT command_id FROM gate_decisions WHERE overrides = %s", (str(command_id),)
    ).fetchone()
    if overridden is not None:
        raise InvalidAction(
            "decision_already_overridden",
            f"闸口指令 {command_id} 已被指令 {overridden[0]} 覆盖。",
            f"Decision {command_id} was already overridden by {overridden[0]}.",
        )


# --- read corrections -----------------------------------------------------------------

CORRECTABLE_KINDS = {
    "container_number": ("gate.passage", "scan.result"),
    "seal_number": ("gate.passage", "seal.status"),
}


def correct_read(
    conn: Connection,
    site_id: str,
    event_id: uuid.UUID | str,
    field: str,
    corrected_raw: str,
    officer: str,
    reason: str,
    original: str | None = None,
) -> str:
    """Store an officer's correction of a misread value as a new event; return its event id.

    ``original`` picks the read being corrected (its raw text or normalised value) when
    the event holds several; with one read it may be left out. The visits concerned are
    re-evaluated in the same transaction.
    """
    _check_reason(officer, reason)
    if field not in CORRECTABLE_KINDS:
        raise InvalidAction(
            "field_not_correctable",
            f"字段 {field} 不可更正，只能更正箱号或施封号。",
            f"Field {field!r} cannot be corrected; use container_number or seal_number.",
        )
    corrected_value = _parse_corrected(field, corrected_raw)

    with conn.transaction():
        stored = _load_event(conn, site_id, str(event_id), field)
        envelope, derived = stored
        original_record = _pick_original(field, derived, original, str(event_id))
        correction = ReadCorrection(
            corrects_event_id=envelope.event_id,
            field=field,  # type: ignore[arg-type]
            original=str(original_record.get("raw") or original_record.get("value") or ""),
            corrected={"raw": corrected_raw, "source": "manual"},  # type: ignore[arg-type]
            reason=reason.strip(),
            officer=officer,
        )
        accepted = _correction_event(conn, site_id, correction)
        accepted.observations = _correction_observations(
            accepted, envelope, derived, field, original_record, corrected_value
        )
        write_batch(conn, [accepted], [])
        if field == "container_number":
            _resolve_unreadable(conn, str(event_id), officer, reason.strip())
        audit.append(
            conn,
            officer,
            "read.correct",
            f"event:{event_id}",
            site_id=site_id,
            reason=reason.strip(),
            details={
                "field": field,
                "original": correction.original,
                "corrected": corrected_value,
                "correction_event_id": str(accepted.envelope.event_id),
            },
        )
    logger.info("Event %s %s corrected to %s by %s", event_id, field, corrected_value, officer)
    return str(accepted.envelope.event_id)


def _parse_corrected(field: str, raw: str) -> str:
    try:
        if field == "container_number":
            return identifiers.parse_container_number(raw).value
        return identifiers.parse_seal_number(raw).value
    except (identifiers.ContainerNumberError, identifiers.SealNumberError) as exc:
        raise InvalidAction(
            "corrected_value_invalid",
            f"更正值 {raw} 不是有效的{'箱号' if field == 'container_number' else '施封号'}：{exc}",
            f"Corrected value {raw!r} is not a valid {field}: {exc}",
        ) from exc


def _load_event(conn: Connection, site_id: str, event_id: str, field: str) -> tuple[Envelope, dict[str, Any]]:
    try:
        uuid.UUID(event_id)
    except ValueError as exc:
        raise ActionNotFound(
            "event_not_found", f"事件 {event_id} 不存在。", f"Event {event_id} was not found."
        ) from exc
    row = conn.execute(
        """
        SELECT e.envelope, e.derived, e.kind FROM event_keys k
        JOIN events e ON e.device_id = k.device_id AND e.seq = k.seq AND e.occurred_at = k.occurred_at
        WHERE k.event_id = %s AND e.site_id = %s
        """,
        (event_id, site_id),
    ).fetchone()
    if row is None:
        raise ActionNotFound(
            "event_not_found",
            f"场站 {site_id} 没有事件 {event_id}。",
            f"Event {event_id} was not found at site {site_id}.",
        )
    document, derived, kind = row
    if kind not in CORRECTABLE_KINDS[field]:
        raise InvalidAction(
            "event_not_correctable",
            f"事件 {event_id} 的类型 {kind} 不含可更正的{field}。",
            f"Event {event_id} is a {kind}, which has no {field} to correct.",
        )
    return Envelope.model_validate(document), derived


def _pick_original(
    field: str, derived: dict[str, Any], original: str | None, event_id: str
) -> dict[str, Any]:
    """Return the derived record of the read being corrected."""
    if field == "container_number":
        records = list(derived.get("containers", []))
    elif "seal" in derived:
        records = [derived["seal"]]
    else:
        records = [seal for container in derived.get("containers", []) for seal in container.get("seals", [])]

    if original is not None:
        records = [item for item in records if original in (item.get("raw"), item.get("value"))]
    if len(records) != 1:
        raise InvalidAction(
            "original_ambiguous",
            f"事件 {event_id} 中有 {len(records)} 个匹配的读数，请指明要更正的原始值。",
            f"Event {event_id} has {len(records)} matching reads; name the original value to correct.",
        )
    return records[0]


def _correction_event(conn: Connection, site_id: str, correction: ReadCorrection) -> Accepted:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (INTERNAL_SEQ_LOCK_KEY,))
    (seq,) = conn.execute(  # type: ignore[misc]
        "SELECT coalesce(max(seq), 0) + 1 FROM event_keys WHERE device_id = %s", (INTERNAL_DEVICE_ID,)
    ).fetchone()
    now = datetime.now(UTC).isoformat()
    document: dict[str, Any] = {
        "contract_version": 1,
        "event_id": str(uuid.uuid4()),
        "device_id": INTERNAL_DEVICE_ID,
        "site_id": site_id,
        "seq": seq,
        "kind": "read.correction",
        "occurred_at": now,
        "recorded_at": now,
        "sent_at": now,
        "payload": correction.model_dump(mode="json", exclude_none=True),
        "signature": INTERNAL_SIGNATURE,
    }
    envelope = Envelope.model_validate(document)
    derived = reads.derive(envelope.typed_payload())
    topic = events_topic(site_id, INTERNAL_DEVICE_ID)
    message = Message(topic, json.dumps(document, ensure_ascii=False).encode(), 0, datetime.now(UTC))
    return Accepted(
        message=message,
        envelope=envelope,
        document=document,
        content_sha256=content_sha256(document),
        derived=derived,
        container_numbers=reads.container_numbers(derived),
    )


def _correction_observations(
    accepted: Accepted,
    original: Envelope,
    derived: dict[str, Any],
    field: str,
    record: dict[str, Any],
    corrected_value: str,
) -> dict[str, Observation]:
    """Return what the correction says per container, placed at the original's device time."""
    marker = Observation(
        event_id=str(accepted.envelope.event_id),
        device_id=INTERNAL_DEVICE_ID,
        seq=accepted.envelope.seq,
        kind="read.correction",
        occurred_at=original.occurred_at,
        corrects_event_id=str(original.event_id),
        correction_field=field,
        original_value=record.get("value") or record.get("raw"),
        corrected_value=corrected_value,
    )
    if field == "seal_number":
        numbers = [item["value"] for item in derived.get("containers", []) if item.get("valid")]
        return {number: marker for number in numbers}

    found: dict[str, Observation] = {}
    if record.get("valid") and record.get("value") != corrected_value:
        found[record["value"]] = marker
    moved = _moved_observation(original, derived, record, corrected_value)
    if moved is not None:
        found[corrected_value] = replace(
            moved,
            event_id=marker.event_id,
            device_id=INTERNAL_DEVICE_ID,
            seq=marker.seq,
            corrected=True,
            decision_requested=False,
            corrects_event_id=marker.corrects_event_id,
            correction_field=field,
            original_value=marker.original_value,
            corrected_value=corrected_value,
        )
    return found


def _moved_observation(
    original: Envelope, derived: dict[str, Any], record: dict[str, Any], corrected_value: str
) -> Observation | None:
    """Rebuild the original event's observation as if the corrected number had been read."""
    patched = json.loads(json.dumps(derived))
    for item in patched.get("containers", []):
        if item.get("raw") == record.get("raw") and item.get("value") == record.get("value"):
            item.update(value=corrected_value, valid=True, corrected=True)
            break
    return observations_of(original, original.typed_payload(), patched).get(corrected_value)


def _resolve_unreadable(conn: Connection, event_id: str, officer: str, reason: str) -> None:
    conn.execute(
        """
        UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = %s, resolve_reason = %s
        WHERE rule_code = %s AND subject_kind = 'passage' AND subject_id = %s AND status <> 'resolved'
        """,
        (officer, f"read corrected: {reason}", CONTAINER_NUMBER_UNREADABLE, event_id),
    )
