"""Turn one MQTT message into an accepted event or a quarantine record.

Nothing here touches the database: the device registry is passed in, so the checks
are easy to test and the callers (the writer process, the decision thread) do the I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from collector.correlation.model import Observation
from kouan import reads
from kouan.contract import (
    ContractModel,
    Envelope,
    EquipmentEvent,
    GatePassage,
    ScanResult,
    SealStatus,
    canonical_bytes,
    split_topic,
)
from kouan.signing import SignatureError, Verifier

# Quarantine reason codes; stable, shown to operators and counted in metrics.
MALFORMED_JSON = "malformed_json"
INVALID_ENVELOPE = "invalid_envelope"
INVALID_PAYLOAD = "invalid_payload"
UNKNOWN_TOPIC = "unknown_topic"
UNKNOWN_DEVICE = "unknown_device"
DEVICE_DISABLED = "device_disabled"
DEVICE_MISMATCH = "device_mismatch"
BAD_SIGNATURE = "bad_signature"
TAMPERED = "tampered"
SECURITY_REASONS = frozenset({UNKNOWN_DEVICE, DEVICE_DISABLED, DEVICE_MISMATCH, BAD_SIGNATURE, TAMPERED})


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    received_at: datetime
    # Container numbers the raw payload mentions, found once on receipt, so that a
    # decision can find the queued events about its containers (collector.inbox).
    mentions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RegisteredDevice:
    device_id: str
    site_id: str
    lane_id: str | None
    verifier: Verifier | None
    enabled: bool


class DeviceRegistry(Protocol):
    def lookup(self, device_id: str) -> RegisteredDevice | None: ...


@dataclass
class Accepted:
    message: Message
    envelope: Envelope
    document: dict[str, Any]
    content_sha256: bytes
    derived: dict[str, Any]
    container_numbers: list[str]
    observations: dict[str, Observation] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    message: Message
    reason_code: str
    reason: str
    device_id: str | None = None
    seq: int | None = None


def inspect(message: Message, registry: DeviceRegistry) -> Accepted | Rejected:
    """Parse, authenticate and validate one message."""
    where = split_topic(message.topic)
    if where is None or where[2] != "events":
        return Rejected(message, UNKNOWN_TOPIC, f"topic {message.topic!r} is not a Kouan v1 events topic")
    topic_site, topic_device, _ = where

    try:
        document = json.loads(message.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejected(message, MALFORMED_JSON, f"payload is not JSON: {exc}")
    if not isinstance(document, dict):
        return Rejected(message, MALFORMED_JSON, "payload is JSON but not an object")

    claimed_device = document.get("device_id") if isinstance(document.get("device_id"), str) else None
    claimed_seq = document.get("seq") if isinstance(document.get("seq"), int) else None

    def reject(code: str, reason: str) -> Rejected:
        return Rejected(message, code, reason, claimed_device, claimed_seq)

    if claimed_device != topic_device or document.get("site_id") != topic_site:
        return reject(
            DEVICE_MISMATCH,
            f"payload device_id/site_id {claimed_device!r}/{document.get('site_id')!r} "
            f"does not match the publishing topic {topic_site}/{topic_device}",
        )

    device = registry.lookup(topic_device)
    if device is None:
        return reject(UNKNOWN_DEVICE, f"device {topic_device!r} is not in the device registry")
    if not device.enabled:
        return reject(DEVICE_DISABLED, f"device {topic_device!r} is disabled")
    if device.site_id != topic_site:
        return reject(DEVICE_MISMATCH, f"device {topic_device!r} is registered at site {device.site_id!r}")
    if device.verifier is None:
        return reject(UNKNOWN_DEVICE, f"device {topic_device!r} has no public key registered")

    try:
        canonical = canonical_bytes(document)
        device.verifier.verify_canonical(document.get("signature"), canonical)
    except SignatureError as exc:
        return reject(BAD_SIGNATURE, str(exc))
    except ValueError as exc:
        return reject(MALFORMED_JSON, f"payload cannot be put in canonical form: {exc}")

    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        return reject(INVALID_ENVELOPE, _validation_summary(exc))
    try:
        payload = envelope.typed_payload()
    except ValidationError as exc:
        return reject(INVALID_PAYLOAD, f"{envelope.kind} payload: {_validation_summary(exc)}")

    derived = reads.derive(payload)
    accepted = Accepted(
        message=message,
        envelope=envelope,
        document=document,
        # The digest of the bytes already made canonical, as content_sha256() would compute.
        content_sha256=hashlib.sha256(canonical).digest(),
        derived=derived,
        container_numbers=reads.container_numbers(derived),
    )
    accepted.observations = observations_of(envelope, payload, derived)
    return accepted


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(item) for item in error["loc"])
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def observations_of(
    envelope: Envelope, payload: ContractModel, derived: dict[str, Any]
) -> dict[str, Observation]:
    """Return what the event says about each container it names, keyed by container number."""
    base = {
        "event_id": str(envelope.event_id),
        "device_id": envelope.device_id,
        "seq": envelope.seq,
        "kind": envelope.kind,
        "occurred_at": envelope.occurred_at,
    }
    found: dict[str, Observation] = {}

    if isinstance(payload, GatePassage):
        plate = (derived.get("tractor_plate") or {}).get("value")
        declaration = (derived.get("declaration") or {}).get("value")
        load = tuple(record["value"] for record in derived["containers"] if record["valid"])
        # A weighbridge weighs the whole load; with a container number unreadable the
        # load is not known, so the weight cannot be compared with any declaration.
        whole_load_known = len(load) == len(derived["containers"])
        weight_kg = payload.gross_weight.kg if payload.gross_weight and whole_load_known else None
        for record in derived["containers"]:
            if not record["valid"]:
                continue
            seals = tuple(seal["value"] for seal in record["seals"] if seal.get("value"))
            found[record["value"]] = Observation(
                **base,
                lane_id=payload.lane_id,
                direction=payload.direction,
                truck_plate=plate,
                seal_numbers=seals,
                gross_weight_kg=weight_kg,
                size_type=record.get("size_type"),
                declaration_number=declaration,
                corrected=record["corrected"],
                decision_requested=payload.decision_requested,
                passage_containers=load,
                passage_id=payload.passage_id,
            )
    elif isinstance(payload, ScanResult):
        for record in derived["containers"]:
            if record["valid"]:
                found[record["value"]] = Observation(
                    **base,
                    lane_id=payload.lane_id,
                    scan_result=payload.result,
                    corrected=record["corrected"],
                )
    elif isinstance(payload, SealStatus):
        eseal = {
            "sealed": payload.sealed,
            "opened": payload.opened,
            "tampered": payload.tampered,
            "approved_opening": payload.approved_opening,
            "battery_low": payload.battery_low,
        }
        for record in derived["containers"]:
            if record["valid"]:
                seal = derived["seal"].get("value")
                found[record["value"]] = Observation(
                    **base,
                    eseal=eseal,
                    seal_numbers=(seal,) if seal else (),
                )
    elif isinstance(payload, EquipmentEvent) and _is_gate_report(payload):
        # A terminal's gate-in/gate-out report (CODECO, DCSA GTIN/GTOT) records the
        # same physical passage a lane reports; correlation treats it as one.
        for record in derived["containers"]:
            if record["valid"]:
                found[record["value"]] = Observation(
                    **{**base, "kind": "gate.passage"},
                    lane_id=payload.lane_id,
                    direction=_TOS_GATE_DIRECTIONS[payload.event_code],
                    truck_plate=(derived.get("truck_plate") or {}).get("value"),
                    seal_numbers=tuple(
                        seal["value"]
                        for seal in record["seals"]
                        if seal.get("value") and not seal.get("placeholder")
                    ),
                    gross_weight_kg=payload.gross_weight_kg or payload.vgm_kg,
                    size_type=record.get("size_type"),
                )
    return found


_TOS_GATE_DIRECTIONS = {"GTIN": "in", "GTOT": "out"}


def _is_gate_report(event: EquipmentEvent) -> bool:
    """Return whether a reported move is an actual gate passage.

    Estimated and planned moves (EST, PLN) and EDIFACT cancellations (BGM function 1)
    did not happen at the gate.
    """
    return (
        event.event_code in _TOS_GATE_DIRECTIONS
        and event.classifier == "ACT"
        and event.source.function != "1"
    )
