"""DCSA Track and Trace equipment events (v2.2 and v3) in and out of Kouan.

Three shapes are read: v2.2 flat events (``equipmentEventTypeCode`` beside
``eventID``), v3 events as the OpenAPI examples show them (``metadata`` and
``payload``), and the v3 producer shape of the DCSA conformance suite
(``eventClassification`` and ``equipmentDetails``, long code names such as LOADED).

Date-times are RFC 3339 with an offset, read strictly: DCSA's own conformance
fixtures send '2021 01 01 14:12:56' and '2019/11/12 07:41:00 +08:30' as negative
cases, and neither may be "helpfully" parsed. One bad event is reported by its
index and field; the other events of the file go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from kouan.contract import EquipmentEventCode

# DCSA v3 conformance enums spell codes out (LOADED); TNT v2.2 and the v3 OpenAPI
# use the 4-letter codes. Unknown spellings are rejected, never guessed.
EVENT_CODE_ALIASES = {
    "LOADED": "LOAD",
    "DISCHARGED": "DISC",
    "GATED_IN": "GTIN",
    "GATED_OUT": "GTOT",
    "STUFFED": "STUF",
    "STRIPPED": "STRP",
    "PICKED_UP": "PICK",
    "DROPPED_OFF": "DROP",
    "INSPECTED": "INSP",
    "RESEALED": "RSEA",
    "REMOVED": "RMVD",
    "CUSTOMS_RELEASED": "CUSR",
}
EVENT_CODES = frozenset(get_args(EquipmentEventCode))
CLASSIFIER_ALIASES = {
    "ACTUAL": "ACT",
    "ESTIMATED": "EST",
    "PLANNED": "PLN",
    "ACT": "ACT",
    "EST": "EST",
    "PLN": "PLN",
}
_EMPTY = {"LADEN": "full", "EMPTY": "empty"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
# A creation time further ahead of the receiving clock than this is implausible.
FUTURE_TOLERANCE = timedelta(days=1)
# Events in one DCSA document; a day of one terminal's moves stays well below.
MAX_EVENTS = 50_000


@dataclass(frozen=True)
class DcsaProblem:
    index: int
    field: str
    detail: str
    event_id: str | None = None

    def __str__(self) -> str:
        return f"event {self.index} ({self.event_id or 'no eventID'}), field {self.field}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "detail": self.detail, "event_id": self.event_id}


class _Invalid(ValueError):
    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field_name
        self.detail = detail


@dataclass
class DcsaDocument:
    version: str
    moves: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    problems: list[DcsaProblem] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def parse_datetime(value: Any, field_name: str) -> datetime:
    """Read an RFC 3339 date-time with offset; raise naming the field otherwise."""
    if value is None:
        raise _Invalid(field_name, "is missing")
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise _Invalid(
            field_name, f"{value!r} is not an RFC 3339 date-time with offset (e.g. 2019-11-12T07:41:00+08:30)"
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Invalid(field_name, f"{value!r} is not a calendar date-time: {exc}") from exc


def events_of(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        events: list[Any] = document["events"]
        return events
    if isinstance(document, dict):
        return [document]
    raise ValueError('A DCSA document is an event object, a list of events or {"events": [...]}')


def parse_document(document: Any, now: datetime | None = None) -> DcsaDocument:
    """Map every equipment event of a DCSA document; others are skipped, bad ones reported."""
    events = events_of(document)
    if len(events) > MAX_EVENTS:
        raise ValueError(f"Document has {len(events)} events; the limit is {MAX_EVENTS}")

    now = now or datetime.now(UTC)
    result = DcsaDocument(version="")
    for index, event in enumerate(events):
        event_id = _event_id(event)
        try:
            mapped = _map_event(event, now)
        except _Invalid as exc:
            result.problems.append(DcsaProblem(index, exc.field, exc.detail, event_id))
            continue
        if isinstance(mapped, str):
            result.skipped.append((index, mapped))
        else:
            result.moves.append(mapped)
    return result


def _event_id(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    metadata = event.get("metadata")
    value = metadata.get("eventID") if isinstance(metadata, dict) else event.get("eventID")
    return str(value) if value is not None else None


def _shape(event: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return (version, header fields, equipment fields) of one event."""
    if isinstance(event.get("metadata"), dict) and isinstance(event.get("payload"), dict):
        return "3.0", event["metadata"], event["payload"]
    if isinstance(event.get("eventClassification"), dict):
        details = event.get("equipmentDetails") or {}
        classification = event["eventClassification"]
        body = {
            **details,
            "eventType": classification.get("eventType"),
            "eventClassifierCode": classification.get("eventClassifier"),
            "equipmentEventTypeCode": classification.get("equipmentEventType"),
            "eventDateTime": event.get("eventDateTime"),
            "eventLocation": event.get("eventLocation"),
            "seals": event.get("seals") or details.get("seals"),
        }
        return "3.0", event, body
    return "2.2", event, event


def _map_event(event: Any, now: datetime) -> tuple[datetime, dict[str, Any]] | str:
    if not isinstance(event, dict):
        raise _Invalid("(event)", f"is a JSON {type(event).__name__}, not an object")

    version, header, body = _shape(event)
    event_type = header.get("eventType") or body.get("eventType")
    created = parse_datetime(
        header.get("eventCreatedDateTime") or header.get("eventUpdatedDateTime"), "eventCreatedDateTime"
    )
    occurred = parse_datetime(body.get("eventDateTime"), "eventDateTime")
    if event_type not in ("EQUIPMENT", None):
        return f"eventType {event_type} is not an equipment event"

    updated = (
        parse_datetime(header["eventUpdatedDateTime"], "eventUpdatedDateTime")
        if header.get("eventUpdatedDateTime")
        else created
    )
    code = _event_code(body.get("equipmentEventTypeCode"))
    classifier = CLASSIFIER_ALIASES.get(str(body.get("eventClassifierCode") or "ACT").upper())
    if classifier is None:
        raise _Invalid("eventClassifierCode", f"{body.get('eventClassifierCode')!r} is not ACT, EST or PLN")
    reference = body.get("equipmentReference")
    if not isinstance(reference, str) or not reference.strip():
        raise _Invalid("equipmentReference", "is missing")

    payload: dict[str, Any] = {
        "event_code": code,
        "classifier": classifier,
        "container_number": {"raw": reference, "source": "tos"},
        "size_type": body.get("ISOEquipmentCode"),
        "full_empty": _EMPTY.get(str(body.get("emptyIndicatorCode") or "").upper()),
        "seals": [_seal(seal) for seal in body.get("seals") or []][:8],
        "references": _references(body),
        "source": {
            "format": "DCSA",
            "version": version,
            "sender": _publisher(header),
            "external_event_id": str(header.get("eventID"))[:100]
            if header.get("eventID") is not None
            else None,
            "external_created_at": created.isoformat(),
            "external_updated_at": updated.isoformat(),
        },
        "flags": _plausibility(classifier, created, occurred, now),
    }
    payload.update(_place(body))
    return occurred, {key: value for key, value in payload.items() if value is not None}


def _event_code(value: Any) -> str:
    text = str(value or "").upper()
    code = EVENT_CODE_ALIASES.get(text, text)
    if code not in EVENT_CODES:
        raise _Invalid(
            "equipmentEventTypeCode", f"{value!r} is not a DCSA equipment event code or a known alias"
        )
    return code


def _seal(seal: Any) -> dict[str, Any]:
    if not isinstance(seal, dict):
        raise _Invalid("seals", f"{seal!r} is not a seal object")
    number = seal.get("number", seal.get("sealNumber"))
    if not isinstance(number, str) or not number.strip():
        raise _Invalid("seals", f"seal {seal!r} has no number")
    return {
        "raw": number,
        "source": "tos",
        "party": seal.get("source", seal.get("sealSource")),
        "seal_type": seal.get("type", seal.get("sealType")),
    }


def _references(body: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for item in (body.get("references") or [])[:8]:
        if isinstance(item, dict):
            found.append(
                {
                    "type": str(item.get("type", item.get("referenceType", ""))),
                    "value": str(item.get("value", item.get("referenceValue", ""))),
                }
            )
    for item in (body.get("relatedDocumentReferences") or body.get("documentReferences") or [])[:8]:
        if isinstance(item, dict):
            found.append(
                {
                    "type": str(item.get("type", item.get("documentReferenceType", ""))),
                    "value": str(item.get("value", item.get("documentReferenceValue", ""))),
                }
            )
    return found[:16]


def _publisher(header: dict[str, Any]) -> str | None:
    publisher = header.get("publisher")
    if isinstance(publisher, dict):
        return publisher.get("carrierCode") or publisher.get("partyName")
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _place(body: dict[str, Any]) -> dict[str, Any]:
    call = _object(body.get("transportCall"))
    location = _object(body.get("eventLocation") or body.get("location") or call.get("location"))
    vessel = _object(call.get("vessel"))
    return {
        "location": location.get("UNLocationCode") or call.get("UNLocationCode"),
        "facility": location.get("facilityCode") or body.get("facilityTypeCode") or body.get("facilityType"),
        "vessel_name": vessel.get("name") or vessel.get("vesselName"),
        "voyage": call.get("carrierExportVoyageNumber") or call.get("exportVoyageNumber"),
    }


def _plausibility(classifier: str, created: datetime, occurred: datetime, now: datetime) -> list[str]:
    flags = []
    if classifier == "ACT" and created < occurred:
        flags.append("created_before_actual_event")
    if created > now + FUTURE_TOLERANCE:
        flags.append("created_in_future")
    return flags
