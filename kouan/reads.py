"""Normalise the sensor reads of an event into the values Kouan correlates on.

Every read keeps its raw text; the derived record adds the normalised value, whether
it validated, and the precise reason when it did not. An invalid identifier never
drops the event: the passage happened, and the unreadable number is itself evidence
(rule ``container_number_unreadable``).
"""

from __future__ import annotations

from typing import Any

from kouan import identifiers
from kouan.contract import (
    ContractModel,
    EquipmentEvent,
    GatePassage,
    Read,
    ReadCorrection,
    ScanResult,
    SealStatus,
)


def container_value(read: Read) -> dict[str, Any]:
    """Return the derived record of one container-number read."""
    record: dict[str, Any] = {"raw": read.raw, "source": read.source, "confidence": read.confidence}
    try:
        number = identifiers.parse_container_number(read.raw)
    except identifiers.ContainerNumberError as exc:
        record.update(value=None, valid=False, corrected=False, error=exc.code, error_text=str(exc))
        return record

    record.update(value=number.value, valid=True, corrected=number.corrected)
    return record


def seal_value(read: Read) -> dict[str, Any]:
    record: dict[str, Any] = {"raw": read.raw, "source": read.source}
    try:
        seal = identifiers.parse_seal_number(read.raw)
    except identifiers.SealNumberError as exc:
        record.update(value=None, valid=False, error=exc.code)
        return record

    record.update(value=seal.value, valid=True, placeholder=seal.placeholder, too_long=seal.too_long)
    return record


def plate_value(read: Read | None) -> dict[str, Any] | None:
    if read is None:
        return None
    try:
        plate = identifiers.parse_plate(read.raw)
    except identifiers.PlateError as exc:
        return {"raw": read.raw, "value": None, "valid": False, "reason": str(exc)}
    return {
        "raw": read.raw,
        "value": plate.value,
        "kind": plate.kind,
        "valid": plate.valid,
        "reason": plate.reason,
    }


def declaration_value(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        number = identifiers.parse_declaration_number(raw)
    except identifiers.DeclarationNumberError as exc:
        return {"raw": raw, "value": None, "valid": False, "error": exc.code}
    return {"raw": raw, "value": number.value, "valid": True}


def derive(payload: ContractModel) -> dict[str, Any]:
    """Return the normalised values of one typed payload."""
    if isinstance(payload, GatePassage):
        return _derive_passage(payload)
    if isinstance(payload, ScanResult):
        return {"containers": [container_value(payload.container_number)]}
    if isinstance(payload, SealStatus):
        containers = [container_value(payload.container_number)] if payload.container_number else []
        return {"containers": containers, "seal": seal_value(payload.seal_number)}
    if isinstance(payload, ReadCorrection):
        return _derive_correction(payload)
    if isinstance(payload, EquipmentEvent):
        return _derive_equipment_event(payload)
    return {}


def _derive_passage(passage: GatePassage) -> dict[str, Any]:
    containers = []
    for item in passage.containers:
        record = container_value(item.container_number)
        record["seals"] = [seal_value(seal) for seal in item.seals]
        record["size_type"] = item.size_type.raw.strip().upper() if item.size_type else None
        record["position"] = item.position
        containers.append(record)

    return {
        "containers": containers,
        "tractor_plate": plate_value(passage.tractor_plate),
        "trailer_plate": plate_value(passage.trailer_plate),
        "declaration": declaration_value(passage.declaration_number),
    }


def _derive_correction(correction: ReadCorrection) -> dict[str, Any]:
    if correction.field == "container_number":
        corrected = container_value(correction.corrected)
        original = container_value(Read(raw=correction.original, source="manual"))
        containers = [record for record in (original, corrected) if record["valid"]]
        return {"corrected": corrected, "containers": containers}
    return {"corrected": seal_value(correction.corrected), "containers": []}


def _derive_equipment_event(event: EquipmentEvent) -> dict[str, Any]:
    """Derive a terminal-reported move; a non-ISO equipment reference is kept and flagged.

    ``version_key`` names the external event a later version replaces: DCSA eventIDs
    are not unique on their own (the TNT v3 OpenAPI example gives one eventID to a
    DROP and a PICK of different equipment), so the key adds the equipment reference.
    """
    record = container_value(event.container_number)
    record["seals"] = [
        {**seal_value(Read(raw=seal.raw, source=seal.source)), "party": seal.party} for seal in event.seals
    ]
    record["size_type"] = event.size_type.strip().upper() if event.size_type else None
    reference = event.container_number.raw.strip().upper()
    derived: dict[str, Any] = {
        "containers": [record],
        "equipment_reference": reference,
        "iso6346_valid": record["valid"],
        "truck_plate": plate_value(event.truck_plate),
    }
    external_id = event.source.external_event_id
    if external_id is not None:
        sender = event.source.sender or "-"
        derived["version_key"] = f"{event.source.format}|{sender}|{external_id}|{reference}"
        updated = event.source.external_updated_at or event.source.external_created_at
        derived["version_at"] = updated.isoformat() if updated else None
    return derived


def container_numbers(derived: dict[str, Any]) -> list[str]:
    """Return the distinct valid container numbers an event concerns."""
    numbers = [record["value"] for record in derived.get("containers", []) if record.get("valid")]
    return sorted(set(numbers))
