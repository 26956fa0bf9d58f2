"""CUSRES (customs response) messages read into a customs status and other holds.

Status arrives in three ways in public samples: coded in GIS (processing
indicator), as free text ``FTX+AHN+++CONSOLIDATED STATUS:<X>`` (Australian ICS
cargo status), or only in free text such as ``MAF HOLD`` (a New Zealand
biosecurity hold stated inside a customs clearance). Kouan maps only the statuses listed here:
an unknown status is kept as read and changes nothing, and "released" is never
inferred from the absence of a hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from kouan.formats.edifact import Message, Problem, Segment

Lifecycle = Literal["released", "held", "inspection_ordered", "rejected"]

# Free-text and coded statuses, upper-cased. Sources: ICS cargo status values in
# the public CUSRES CARST samples (HELD, DCLALLOWED: the latter has no documented
# meaning here, so it is not mapped); GIS 819 in the NZ clearance sample, whose
# public test expects entry status CLR (the NZ code list itself was not checked).
STATUS_TEXT: dict[str, Lifecycle] = {
    "HELD": "held",
    "HOLD": "held",
    "CLR": "released",
    "CLEAR": "released",
    "CLEARED": "released",
    "RELEASED": "released",
    "EXAMINATION": "inspection_ordered",
    "FOR EXAMINATION": "inspection_ordered",
    "INSPECTION": "inspection_ordered",
    "REJECTED": "rejected",
}
GIS_STATUS: dict[str, tuple[str, Lifecycle]] = {"819": ("CLR", "released")}
_CONSOLIDATED = re.compile(r"CONSOLIDATED STATUS:\s*(?P<status>[A-Z ]+)")
# "<AUTHORITY> HOLD": another authority's hold (MAF = NZ Ministry of Agriculture and
# Forestry, biosecurity). A customs hold is the customs status, not another's.
_OTHER_HOLD = re.compile(r"\b(?P<authority>[A-Z]{2,12}) HOLD\b")
_CUSTOMS_AUTHORITIES = frozenset({"CUSTOMS", "CUS", "CUSTOM"})


@dataclass
class CustomsResponse:
    message_ref: str
    version: str
    document_code: str
    reference: str
    status_text: str | None = None
    lifecycle: Lifecycle | None = None
    other_holds: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    issued_at: datetime | None = None
    texts: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def processing(self) -> str:
        """'known' when a status was mapped, else 'unknown'."""
        return "known" if self.lifecycle else "unknown"


def response_time(value: str, format_code: str, zone: ZoneInfo) -> datetime:
    """Read CUSRES DTM values, including the 20-digit ZZZ form yyyyMMddHHmmss + 6 fractional digits."""
    if format_code == "ZZZ" and len(value) == 20 and value.isdigit():
        moment = datetime.strptime(value[:14], "%Y%m%d%H%M%S") + timedelta(microseconds=int(value[14:]))
        return moment.replace(tzinfo=zone)
    from kouan.formats.moves import edifact_time

    return edifact_time(value, format_code, zone)


def read_cusres(message: Message, zone: ZoneInfo) -> CustomsResponse:
    """Read one CUSRES message; a message of UNH and UNT only gives no status and raises nothing."""
    bgm = next((segment for segment in message.body if segment.tag == "BGM"), None)
    response = CustomsResponse(
        message_ref=message.reference,
        version=message.version,
        document_code=_document_code(bgm),
        reference=bgm.component(1) if bgm else "",
        problems=list(message.problems),
    )
    for segment in message.body:
        _take(response, segment, zone)
    return response


def _document_code(bgm: Segment | None) -> str:
    if bgm is None:
        return ""
    code, name = bgm.component(0, 0), bgm.component(0, 3)
    return f"{code}:{name}" if name else code


def _take(response: CustomsResponse, segment: Segment, zone: ZoneInfo) -> None:
    tag, qualifier = segment.tag, segment.qualifier()
    if tag == "FTX":
        text = segment.text(3)
        response.texts.append(text)
        _read_text(response, text)
    elif tag == "GIS" and segment.component(0, 0) in GIS_STATUS and response.lifecycle is None:
        response.status_text, response.lifecycle = GIS_STATUS[segment.component(0, 0)]
    elif tag == "RFF" and qualifier == "AAQ":
        response.containers.append(segment.component(0, 1))
    elif tag == "DTM" and segment.component(0, 0) == "9" and response.issued_at is None:
        try:
            response.issued_at = response_time(segment.component(0, 1), segment.component(0, 2), zone)
        except ValueError as exc:
            response.problems.append(
                Problem("invalid_time", segment.position, "DTM", str(exc), response.message_ref)
            )


def _read_text(response: CustomsResponse, text: str) -> None:
    upper = text.upper()
    match = _CONSOLIDATED.search(upper)
    if match:
        status = match["status"].strip()
        response.status_text = status
        response.lifecycle = STATUS_TEXT.get(status)
    for hold in _OTHER_HOLD.finditer(upper):
        authority = hold["authority"]
        if authority in _CUSTOMS_AUTHORITIES:
            response.status_text, response.lifecycle = "HELD", "held"
        elif authority not in response.other_holds:
            response.other_holds.append(authority)
