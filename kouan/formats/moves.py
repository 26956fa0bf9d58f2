"""Equipment groups (EQD ...) of CODECO and COARRI messages as equipment.event payloads.

Both messages (SMDG user manuals for CODECO and COARRI, D.95B) repeat one group per
container: EQD, then references (RFF), times (DTM), places (LOC), measures (MEA),
seals (SEL), free text (FTX), dangerous goods (DGS) and transport (TDT). The group
ends at the next EQD or at the message trailer (CNT, UNT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from kouan.formats.edifact import Interchange, Message, Problem, Segment

# Data element 8169 (full/empty indicator): 4 empty, 5 full (UN/EDIFACT D.95B).
_FULL_EMPTY = {"4": "empty", "5": "full"}
# MEA measurement attribute (6313) values terminals use for container weights.
_TARE = {"T", "AAL"}
_GROSS = {"G", "EGW", "AAD", "WT"}
_VGM = {"VGM"}
# DTM qualifiers for the moment the move happened, most specific first: 203
# execution, 7 effective, 178 actual arrival, 186 actual departure; "ACT" is not in
# code list 2005 but appears in SMDG16 CODECO sent by Spanish ports.
_EVENT_TIME_QUALIFIERS = ("203", "7", "178", "186", "ACT")
# Transport modes (8067) that mean a truck: 3 road.
_ROAD = "3"
_UNIT_KG = {"KGM": 1.0, "TNE": 1000.0}

INVALID_TIME = "invalid_time"
INVALID_VALUE = "invalid_value"
MISSING_TIME = "missing_time"
UNKNOWN_DOCUMENT = "unknown_document"
NO_EQUIPMENT = "no_equipment"


class MoveError(ValueError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class MessageMoves:
    """What one message gave: payloads with their event times, and what failed."""

    message: Message
    moves: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def edifact_time(value: str, format_code: str, zone: ZoneInfo) -> datetime:
    """Read a DTM value; formats 102, 203, 204 have no zone and take ``zone``.

    Format 303 (CCYYMMDDHHMMZZZ) carries its own offset, e.g. '201602041652+01'.
    An ambiguous local time (the repeated hour when summer time ends) is read as its
    first occurrence (``fold=0``).
    Raises ValueError naming the value and format.
    """
    formats = {"102": "%Y%m%d", "203": "%Y%m%d%H%M", "204": "%Y%m%d%H%M%S"}
    if format_code in formats:
        moment = datetime.strptime(value, formats[format_code])
        return moment.replace(tzinfo=zone)
    if format_code == "303":
        match = re.fullmatch(r"(\d{12})([+-]\d{2})(\d{2})?", value)
        if match is None:
            raise ValueError(f"DTM value {value!r} is not format 303 (CCYYMMDDHHMMZZZ)")
        offset = timedelta(
            hours=int(match.group(2)),
            minutes=int(match.group(3) or 0) * (1 if match.group(2)[0] == "+" else -1),
        )
        return datetime.strptime(match.group(1), "%Y%m%d%H%M").replace(tzinfo=timezone(offset))
    raise ValueError(f"DTM format {format_code!r} is not supported (102, 203, 204, 303)")


def groups(message: Message) -> tuple[list[Segment], list[list[Segment]]]:
    """Split a message body into its header segments and its EQD groups."""
    header: list[Segment] = []
    found: list[list[Segment]] = []
    for segment in message.body:
        if segment.tag == "EQD":
            found.append([segment])
        elif segment.tag == "CNT":
            continue
        elif found:
            found[-1].append(segment)
        else:
            header.append(segment)
    return header, found


def map_message(
    message: Message,
    interchange: Interchange,
    event_codes: dict[str, str],
    format_name: str,
    zone: ZoneInfo,
) -> MessageMoves:
    """Map every EQD group of one CODECO or COARRI message; a bad group costs only itself."""
    result = MessageMoves(message)
    bgm = next((segment for segment in message.body if segment.tag == "BGM"), None)
    document = bgm.component(0) if bgm else ""
    event_code = event_codes.get(document)
    if event_code is None:
        position = bgm.position if bgm else message.segments[0].position
        result.problems.append(
            _problem(
                message,
                UNKNOWN_DOCUMENT,
                position,
                "BGM",
                f"{format_name} document code {document!r} is not one of {sorted(event_codes)}",
            )
        )
        return result

    header, equipment = groups(message)
    if not equipment:
        result.problems.append(
            _problem(
                message, NO_EQUIPMENT, message.segments[0].position, "UNH", "the message has no EQD group"
            )
        )
    context = _header_context(header, zone)
    source = {
        "format": format_name,
        "version": message.version,
        "sender": interchange.sender,
        "interchange_ref": interchange.control_reference,
        "message_ref": message.reference,
        "function": bgm.component(2) if bgm else None,
        **_document_version(bgm, interchange, zone),
    }
    for index, group in enumerate(equipment, start=1):
        try:
            result.moves.append(_map_group(message, group, index, event_code, context, source, zone))
        except MoveError as exc:
            result.problems.append(exc.problem)
    return result


def _document_version(bgm: Segment | None, interchange: Interchange, zone: ZoneInfo) -> dict[str, Any]:
    """Identify the document a replacement (BGM function 5) or cancellation (1) refers to.

    SMDG messages repeat the original's document number (BGM 1004) in its replacement,
    and the interchange preparation time (UNB 0017/0019) orders the versions. Without
    both, the move is not versioned.
    """
    number = bgm.component(1) if bgm else ""
    prepared = interchange.prepared or ""
    formats = {11: "%y%m%d:%H%M", 13: "%Y%m%d:%H%M"}  # syntax versions 1-3, and 4
    if not number or not re.fullmatch(r"\d{6}(\d{2})?:\d{4}", prepared):
        return {}

    moment = datetime.strptime(prepared, formats[len(prepared)]).replace(tzinfo=zone)
    return {"external_event_id": number[:100], "external_updated_at": moment.isoformat()}


def _problem(message: Message, code: str, position: int, tag: str, detail: str) -> Problem:
    offset = position - message.segments[0].position + 1
    return Problem(code, position, tag, detail, message.reference, offset)


def _header_context(header: list[Segment], zone: ZoneInfo) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for segment in header:
        if segment.tag == "TDT" and segment.qualifier() == "20":
            context["voyage"] = segment.component(1) or None
            context["vessel_name"] = segment.component(7, 3) or None
        elif segment.tag == "LOC" and "location" not in context:
            context["location"] = segment.component(1) or None
            context["facility"] = segment.component(2) or None
    return context


def _map_group(
    message: Message,
    group: list[Segment],
    index: int,
    event_code: str,
    context: dict[str, Any],
    source: dict[str, Any],
    zone: ZoneInfo,
) -> tuple[datetime, dict[str, Any]]:
    eqd = group[0]
    occurred_at = _event_time(message, group, zone)
    payload: dict[str, Any] = {
        "event_code": event_code,
        "classifier": "ACT",
        "container_number": {"raw": eqd.component(1), "source": "tos"},
        "size_type": eqd.component(2) or None,
        "full_empty": _FULL_EMPTY.get(eqd.component(5)),
        "seals": [],
        "references": [],
        "location": context.get("location"),
        "facility": context.get("facility"),
        "vessel_name": context.get("vessel_name"),
        "voyage": context.get("voyage"),
        "source": {**source, "position": f"EQD {index} at segment {eqd.position}"},
        "flags": [f"local_time:{zone.key}"],
    }
    for segment in group[1:]:
        try:
            _apply(payload, segment)
        except ValueError as exc:
            raise MoveError(
                _problem(message, INVALID_VALUE, segment.position, segment.tag, str(exc))
            ) from exc
    return occurred_at, {key: value for key, value in payload.items() if value is not None}


def _apply(payload: dict[str, Any], segment: Segment) -> None:
    tag, qualifier = segment.tag, segment.qualifier()
    if tag == "SEL":
        payload["seals"].append(
            {"raw": segment.component(0), "source": "tos", "party": segment.component(1) or None}
        )
    elif tag == "MEA":
        _apply_weight(payload, segment)
    elif tag == "RFF":
        payload["references"].append({"type": qualifier, "value": segment.component(0, 1)})
    elif tag == "LOC" and qualifier == "165":
        payload["location"] = segment.component(1) or payload["location"]
        payload["facility"] = segment.component(2) or payload["facility"]
    elif tag == "TDT" and segment.component(2) == _ROAD:
        plate = segment.component(7)
        if plate:
            payload["truck_plate"] = {"raw": plate, "source": "tos"}
    elif tag == "DGS":
        payload["flags"].append(f"dangerous_goods:{segment.component(1)}/{segment.component(2)}")


def _apply_weight(payload: dict[str, Any], segment: Segment) -> None:
    attribute = segment.component(1)
    unit, text = segment.component(2, 0), segment.component(2, 1)
    factor = _UNIT_KG.get(unit)
    if factor is None or not text:
        return
    try:
        kg = float(text) * factor
    except ValueError as exc:
        raise ValueError(f"weight {text!r} {unit} is not a number") from exc
    if attribute in _TARE:
        payload["tare_weight_kg"] = kg
    elif attribute in _GROSS:
        payload["gross_weight_kg"] = kg
    elif attribute in _VGM:
        payload["vgm_kg"] = kg


def _event_time(message: Message, group: list[Segment], zone: ZoneInfo) -> datetime:
    stamps = {segment.component(0, 0): segment for segment in group if segment.tag == "DTM"}
    for qualifier in _EVENT_TIME_QUALIFIERS:
        segment = stamps.get(qualifier)
        if segment is None:
            continue
        try:
            return edifact_time(segment.component(0, 1), segment.component(0, 2), zone)
        except ValueError as exc:
            raise MoveError(_problem(message, INVALID_TIME, segment.position, "DTM", str(exc))) from exc
    eqd = group[0]
    raise MoveError(
        _problem(
            message,
            MISSING_TIME,
            eqd.position,
            "EQD",
            f"container {eqd.component(1)!r} has no handling time (DTM {'/'.join(_EVENT_TIME_QUALIFIERS)})",
        )
    )
