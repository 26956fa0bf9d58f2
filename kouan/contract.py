"""Event contract v1: the envelope an edge device signs and the collector stores.

JSON on the wire, one envelope per MQTT message on ``kouan/v1/{site}/{device}/events``.
The signature is Ed25519 over :func:`canonical_bytes`: the envelope without its
``signature`` member, serialised with sorted keys, no insignificant whitespace and
UTF-8 text (Python's ``json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``). The collector computes those bytes from the JSON it
received, never from a re-serialised model, so a receiver in any language can do
the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

CONTRACT_VERSION = 1
TOPIC_ROOT = "kouan/v1"

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
EventKind = Literal[
    "gate.passage",
    "scan.result",
    "seal.status",
    "device.heartbeat",
    "read.correction",
    "equipment.event",
    "command.result",
]
ReadSource = Literal["ocr", "lpr", "rfid", "eseal", "scale", "manual", "tos"]
# Longest raw text kept from one sensor read; a container number with spaces and
# brackets is under 20 characters, an e-seal frame in hex under 64.
MAX_RAW_CHARS = 128


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Read(ContractModel):
    """One value as a sensor or a person read it, with its provenance."""

    raw: Annotated[str, StringConstraints(max_length=MAX_RAW_CHARS)]
    source: ReadSource
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    sensor_id: Identifier | None = None
    read_at: AwareDatetime | None = None
    image_ref: Annotated[str, StringConstraints(max_length=512)] | None = None


class WeightRead(ContractModel):
    """A weighbridge reading in kilograms; only stable readings are reported."""

    kg: Annotated[float, Field(ge=0.0, le=200_000.0)]
    source: ReadSource = "scale"
    sensor_id: Identifier | None = None
    stable: bool = True
    read_at: AwareDatetime | None = None


class ContainerRead(ContractModel):
    container_number: Read
    size_type: Read | None = None
    seals: Annotated[list[Read], Field(max_length=8)] = []
    position: Literal["front", "rear", "single"] | None = None


class GatePassage(ContractModel):
    """A truck's passage through a gate lane, fused from every read that joined it."""

    passage_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lane_id: Identifier
    direction: Literal["in", "out"]
    tractor_plate: Read | None = None
    trailer_plate: Read | None = None
    containers: Annotated[list[ContainerRead], Field(max_length=4)] = []
    gross_weight: WeightRead | None = None
    declaration_number: Annotated[str, StringConstraints(max_length=32)] | None = None
    decision_requested: bool = False


class ScanResult(ContractModel):
    """The outcome of a non-intrusive inspection (H986-class scanner) of one container."""

    lane_id: Identifier
    container_number: Read
    result: Literal["clear", "suspicious", "failed"]
    image_ref: Annotated[str, StringConstraints(max_length=512)] | None = None


class SealStatus(ContractModel):
    """An e-seal (ISO 18185) status report."""

    seal_number: Read
    container_number: Read | None = None
    sealed: bool
    opened: bool = False
    tampered: bool = False
    approved_opening: bool = False
    battery_low: bool = False
    status_flags: Annotated[str, StringConstraints(max_length=16)] | None = None


class DeviceHeartbeat(ContractModel):
    outbox_depth: Annotated[int, Field(ge=0)] = 0
    oldest_pending_s: Annotated[float, Field(ge=0.0)] | None = None
    firmware: Annotated[str, StringConstraints(max_length=64)] | None = None


class ReadCorrection(ContractModel):
    """An officer's correction of a misread value; the original event is never changed."""

    corrects_event_id: UUID
    field: Literal["container_number", "seal_number"]
    original: Annotated[str, StringConstraints(max_length=MAX_RAW_CHARS)]
    corrected: Read
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    officer: Annotated[str, StringConstraints(min_length=1, max_length=64)]


# DCSA Track and Trace equipmentEventTypeCode (event domain v3): one code list for
# every equipment move a terminal reports, whatever format it arrived in.
EquipmentEventCode = Literal[
    "LOAD",
    "DISC",
    "GTIN",
    "GTOT",
    "STUF",
    "STRP",
    "AVPU",
    "PICK",
    "AVDO",
    "DROP",
    "INSP",
    "RSEA",
    "RMVD",
    "CUSS",
    "CUSI",
    "CUSR",
    "CROS",
]


class SealRead(ContractModel):
    """A seal as a terminal system reported it, with the party that applied it."""

    raw: Annotated[str, StringConstraints(max_length=MAX_RAW_CHARS)]
    source: ReadSource = "tos"
    party: Annotated[str, StringConstraints(max_length=8)] | None = Field(
        default=None,
        description="Sealing party: EDIFACT 9303 (SH, CA, CU, ...) or DCSA sealSource (CUS, SHI, ...)",
    )
    seal_type: Annotated[str, StringConstraints(max_length=8)] | None = None


class SourceDocument(ContractModel):
    """Where a reported event came from, precisely enough to find it again."""

    format: Literal["CODECO", "COARRI", "DCSA"]
    version: Annotated[str, StringConstraints(max_length=32)] | None = None
    sender: Annotated[str, StringConstraints(max_length=64)] | None = None
    interchange_ref: Annotated[str, StringConstraints(max_length=64)] | None = None
    message_ref: Annotated[str, StringConstraints(max_length=64)] | None = None
    function: Annotated[str, StringConstraints(max_length=16)] | None = None
    position: Annotated[str, StringConstraints(max_length=64)] | None = None
    external_event_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    external_created_at: AwareDatetime | None = None
    external_updated_at: AwareDatetime | None = None
    file_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None


class EquipmentEvent(ContractModel):
    """A container move reported by a terminal operating system or a carrier feed."""

    event_code: EquipmentEventCode
    classifier: Literal["ACT", "EST", "PLN"] = "ACT"
    container_number: Read
    size_type: Annotated[str, StringConstraints(max_length=8)] | None = None
    full_empty: Literal["full", "empty"] | None = None
    seals: Annotated[list[SealRead], Field(max_length=8)] = []
    gross_weight_kg: Annotated[float, Field(ge=0.0, le=200_000.0)] | None = None
    tare_weight_kg: Annotated[float, Field(ge=0.0, le=50_000.0)] | None = None
    vgm_kg: Annotated[float, Field(ge=0.0, le=200_000.0)] | None = None
    truck_plate: Read | None = None
    lane_id: Identifier | None = None
    location: Annotated[str, StringConstraints(max_length=16)] | None = None
    facility: Annotated[str, StringConstraints(max_length=32)] | None = None
    vessel_name: Annotated[str, StringConstraints(max_length=64)] | None = None
    voyage: Annotated[str, StringConstraints(max_length=32)] | None = None
    references: Annotated[list[dict[str, str]], Field(max_length=16)] = []
    source: SourceDocument
    flags: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=16)] = []


class CommandResult(ContractModel):
    """What a lane did with a command: acted on it once, or rejected it and why."""

    command_id: Annotated[str, StringConstraints(max_length=64)]
    lane_id: Identifier | None = None
    outcome: Literal["acted", "expired", "duplicate", "misaddressed", "invalid"]
    decision: Literal["release", "hold", "manual"] | None = None
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


PAYLOAD_MODELS: dict[str, type[ContractModel]] = {
    "gate.passage": GatePassage,
    "scan.result": ScanResult,
    "seal.status": SealStatus,
    "device.heartbeat": DeviceHeartbeat,
    "read.correction": ReadCorrection,
    "equipment.event": EquipmentEvent,
    "command.result": CommandResult,
}


class Envelope(ContractModel):
    """One signed event as it travels from an edge device to the collector."""

    contract_version: Literal[1]
    event_id: UUID
    device_id: Identifier
    site_id: Identifier
    seq: Annotated[int, Field(ge=1, le=2**62)]
    kind: EventKind
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    sent_at: AwareDatetime
    payload: dict[str, Any]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=128)]

    def typed_payload(self) -> ContractModel:
        """Validate ``payload`` against the model of this envelope's ``kind``."""
        return PAYLOAD_MODELS[self.kind].model_validate(self.payload)


# --- canonical form and signatures ----------------------------------------------------


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """Return the bytes that are signed: everything but ``signature``, in canonical JSON."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def content_sha256(document: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_bytes(document)).digest()


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def decode_signature(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def isoformat(moment: datetime) -> str:
    """Format a timezone-aware datetime as RFC 3339 with its UTC offset."""
    if moment.tzinfo is None:
        raise ValueError(f"Timestamp {moment!r} has no UTC offset; the contract requires one")
    return moment.isoformat(timespec="microseconds")


def new_envelope(
    device_id: str,
    site_id: str,
    seq: int,
    kind: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    recorded_at: datetime,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """Build an unsigned envelope document with a new event id.

    Without ``sent_at`` the key is left out; the edge agent adds it at the first
    transmission.
    """
    document: dict[str, Any] = {
        "contract_version": CONTRACT_VERSION,
        "event_id": str(uuid4()),
        "device_id": device_id,
        "site_id": site_id,
        "seq": seq,
        "kind": kind,
        "occurred_at": isoformat(occurred_at),
        "recorded_at": isoformat(recorded_at),
    }
    if sent_at is not None:
        document["sent_at"] = isoformat(sent_at)
    document["payload"] = payload
    return document


# --- topics ---------------------------------------------------------------------------


def events_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/events"


def receipts_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/receipts"


def commands_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/commands"


def status_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/status"


def split_topic(topic: str) -> tuple[str, str, str] | None:
    """Return (site_id, device_id, channel) of a Kouan v1 topic, or None."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        return None
    return parts[2], parts[3], parts[4]


class Receipt(ContractModel):
    """The collector's confirmation that these ``seq`` numbers are committed."""

    device_id: Identifier
    seqs: list[int]
    committed_at: AwareDatetime


class Command(ContractModel):
    """A command to a lane, acted on at most once and never after ``valid_until``."""

    command_id: UUID
    kind: Literal["gate.decision"]
    device_id: Identifier
    lane_id: Identifier
    passage_id: str
    container_numbers: list[str]
    decision: Literal["release", "hold", "manual"]
    reasons: list[dict[str, str]] = []
    issued_at: AwareDatetime
    valid_until: AwareDatetime
