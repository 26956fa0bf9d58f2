"""CUSDEC (customs declaration) messages read into Kouan declarations.

The message is read into :class:`CusdecDeclaration` without judging it, so every
value can be shown; :func:`to_declaration` then applies Kouan's rules (18-digit
海关编号, ISO 6346 container numbers, GB 32100 credit code) through the same
validation as ``PUT /api/v1/declarations/{number}``.

Segments used (UN/EDIFACT D.96B CUSDEC): BGM document number and function (1
cancellation, 5 replace, 9 original), DTM+137 document date, NAD+CN consignee /
NAD+CZ consignor, MEA+WT+AAD gross weight, EQD+CN containers with the SEL seals and
MEA weights that follow them, RFF+AAQ container references, LOC and CST kept as read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kouan.formats.edifact import Message, Problem
from kouan.formats.moves import edifact_time

_GROSS = {"G", "AAD", "EGW"}
_UNIT_KG = {"KGM": 1.0, "TNE": 1000.0}


@dataclass
class CusdecContainer:
    container_number: str
    size_type: str | None = None
    seal_numbers: list[str] = field(default_factory=list)
    gross_weight_kg: float | None = None


@dataclass
class CusdecDeclaration:
    message_ref: str
    version: str
    document_code: str
    number: str
    function: str
    declared_at: datetime | None = None
    consignee_code: str | None = None
    consignee_name: str | None = None
    gross_weight_kg: float | None = None
    locations: list[tuple[str, str]] = field(default_factory=list)
    tariff_codes: list[str] = field(default_factory=list)
    containers: list[CusdecContainer] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_cusdec(message: Message, zone: ZoneInfo) -> CusdecDeclaration:
    """Read one CUSDEC message; envelope problems travel with the result."""
    bgm = next((segment for segment in message.body if segment.tag == "BGM"), None)
    declaration = CusdecDeclaration(
        message_ref=message.reference,
        version=message.version,
        document_code=bgm.component(0) if bgm else "",
        number=bgm.component(1) if bgm else "",
        function=bgm.component(2) if bgm else "",
        problems=list(message.problems),
    )
    current: CusdecContainer | None = None
    for segment in message.body:
        current = _take(declaration, current, segment, zone)
    return declaration


def _take(
    declaration: CusdecDeclaration, current: CusdecContainer | None, segment: Any, zone: ZoneInfo
) -> CusdecContainer | None:
    tag, qualifier = segment.tag, segment.qualifier()
    if tag == "EQD" and qualifier == "CN":
        container = CusdecContainer(segment.component(1), segment.component(2) or None)
        declaration.containers.append(container)
        return container
    if tag == "RFF" and qualifier == "AAQ":
        number = segment.component(0, 1)
        if all(item.container_number != number for item in declaration.containers):
            declaration.containers.append(CusdecContainer(number))
    elif tag == "SEL" and current is not None:
        current.seal_numbers.append(segment.component(0))
    elif tag == "MEA":
        _weight(declaration, current, segment)
    elif tag == "NAD" and qualifier in ("CN", "CZ") and declaration.consignee_code is None:
        declaration.consignee_code = segment.component(1) or None
        declaration.consignee_name = segment.component(3) or segment.component(4) or None
    elif tag == "DTM" and segment.component(0, 0) == "137":
        declaration.declared_at = edifact_time(segment.component(0, 1), segment.component(0, 2), zone)
    elif tag == "LOC":
        declaration.locations.append((qualifier, segment.component(1)))
    elif tag == "CST" and segment.component(1) and segment.component(1, 1) in ("169", ""):
        # Code list 169 is the customs tariff; CST++10:105 in the header is a
        # customs status of goods (list 105), not a tariff number.
        declaration.tariff_codes.append(segment.component(1))
    return current


def _weight(declaration: CusdecDeclaration, current: CusdecContainer | None, segment: Any) -> None:
    factor = _UNIT_KG.get(segment.component(2, 0))
    text = segment.component(2, 1)
    if factor is None or not text or segment.component(1) not in _GROSS:
        return
    kg = float(text) * factor
    if current is not None:
        current.gross_weight_kg = kg
    else:
        declaration.gross_weight_kg = kg


def to_declaration_body(declaration: CusdecDeclaration, site_id: str) -> dict[str, Any]:
    """Return the body of ``PUT /api/v1/declarations/{number}`` for this CUSDEC.

    A cancellation (BGM function 1) becomes status ``cancelled``; everything else is
    ``declared`` until a CUSRES changes it.
    """
    return {
        "site_id": site_id,
        "status": "cancelled" if declaration.function == "1" else "declared",
        "consignee_code": declaration.consignee_code,
        "consignee_name": declaration.consignee_name,
        "declared_at": declaration.declared_at,
        "containers": [
            {
                "container_number": item.container_number,
                "size_type": item.size_type,
                "seal_numbers": item.seal_numbers,
                "gross_weight_kg": item.gross_weight_kg,
            }
            for item in declaration.containers
        ],
    }
