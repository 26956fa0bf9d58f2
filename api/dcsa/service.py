"""A container's Kouan events as DCSA Track and Trace v3 equipment events.

Lane passages become GTIN/GTOT, scanner results INSP, terminal-reported moves keep
their own code, and a customs release of a declaration naming the container becomes
CUSR. A DCSA event that was later corrected (same eventID, later update time) is
exported in its current version only; the earlier version stays stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.containers.service import parse_number
from api.errors import ApiError, NotFound

# Seal sources of DCSA v3 (sealSource) by EDIFACT party (9303): shipper, carrier,
# customs; quarantine and veterinary agencies seal as VET.
SEAL_SOURCES = {
    "SH": "SHI",
    "CA": "CAR",
    "CU": "CUS",
    "AC": "VET",
    "SHI": "SHI",
    "CAR": "CAR",
    "CUS": "CUS",
    "VET": "VET",
    "PHY": "PHY",
}
_EMPTY = {"full": "LADEN", "empty": "EMPTY"}
_PASSAGE_CODES = {"in": "GTIN", "out": "GTOT"}
# Kouan's own namespace for ids of exported events that have no stored event (CUSR).
_CUSR_NAMESPACE = uuid.UUID("6f1f4b0e-5d0c-4c36-9a57-1f0b8f6d2c11")
MAX_EVENTS = 1000


def equipment_reference(raw: str) -> tuple[str, bool]:
    """Return (reference, ISO 6346 valid); a stored non-ISO reference is up to 11 letters and digits."""
    try:
        return parse_number(raw).value, True
    except ApiError:
        reference = raw.strip().upper()
        if not reference.isalnum() or len(reference) > 11:
            raise
        return reference, False


def dcsa_events(conn: Connection, sites: list[str], raw: str) -> list[dict[str, Any]]:
    number, iso_valid = equipment_reference(raw)
    rows = _event_rows(conn, sites, number, iso_valid)
    superseded = _superseded(conn, sites, rows)
    locodes = dict(
        conn.execute("SELECT site_id, locode FROM sites WHERE site_id = ANY(%s)", (sites,)).fetchall()
    )

    events = []
    for row in rows:
        if row["event_id"] in superseded:
            continue
        events.extend(_to_dcsa(row, number, locodes.get(row["site_id"])))
    events.extend(_releases(conn, sites, number, locodes))
    if not events:
        raise NotFound("Container", "集装箱", number)
    return sorted(events, key=lambda event: event["payload"]["eventDateTime"])


def _event_rows(conn: Connection, sites: list[str], number: str, iso_valid: bool) -> list[dict[str, Any]]:
    """Events naming the container: by container_numbers, or for a non-ISO reference by the
    equipment reference that only terminal-reported events store."""
    match = (
        "container_numbers @> ARRAY[%s]::text[]"
        " AND kind IN ('gate.passage', 'scan.result', 'equipment.event')"
        if iso_valid
        else "kind = 'equipment.event' AND derived ->> 'equipment_reference' = %s"
    )
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f"""
            SELECT event_id, kind, occurred_at, recorded_at, site_id, lane_id,
                   envelope -> 'payload' AS payload, derived
            FROM events WHERE site_id = ANY(%s) AND {match}
            ORDER BY occurred_at LIMIT %s
            """,
            (sites, number, MAX_EVENTS),
        )
        return cursor.fetchall()


def _superseded(conn: Connection, sites: list[str], rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    keys = sorted({row["derived"]["version_key"] for row in rows if row["derived"].get("version_key")})
    if not keys:
        return set()
    found = conn.execute(
        """
        SELECT event_id FROM equipment_event_versions
        WHERE site_id = ANY(%s) AND version_key = ANY(%s) AND NOT is_current
        """,
        (sites, keys),
    ).fetchall()
    return {event_id for (event_id,) in found}


def _event(
    event_id: Any, created: datetime, occurred: datetime, code: str, number: str, locode: str | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "EQUIPMENT",
        "eventClassifierCode": "ACT",
        "eventDateTime": occurred.isoformat(),
        "equipmentEventTypeCode": code,
        "equipmentReference": number,
    }
    if locode:
        payload["location"] = {"locationType": "UNLO", "UNLocationCode": locode}
    return {
        "metadata": {
            "eventID": str(event_id),
            "eventCreatedDateTime": created.isoformat(),
            "eventType": "EQUIPMENT",
            "publisherRole": "TR",
        },
        "payload": payload,
    }


def _to_dcsa(row: dict[str, Any], number: str, locode: str | None) -> list[dict[str, Any]]:
    payload, kind = row["payload"], row["kind"]
    if kind == "gate.passage":
        event = _event(
            row["event_id"],
            row["recorded_at"],
            row["occurred_at"],
            _PASSAGE_CODES[payload["direction"]],
            number,
            locode,
        )
        for item, record in zip(
            payload.get("containers", []), row["derived"].get("containers", []), strict=False
        ):
            if record.get("value") == number:
                _add_equipment(
                    event["payload"],
                    record.get("size_type"),
                    None,
                    [{"number": seal["raw"]} for seal in item.get("seals", [])],
                )
        return [event]
    if kind == "scan.result":
        return [_event(row["event_id"], row["recorded_at"], row["occurred_at"], "INSP", number, locode)]

    if payload["source"].get("function") == "1":
        # An EDIFACT cancellation: the move it cancels is superseded and not exported either.
        return []
    event = _event(
        row["event_id"], row["recorded_at"], row["occurred_at"], payload["event_code"], number, locode
    )
    event["payload"]["eventClassifierCode"] = payload.get("classifier", "ACT")
    seals = [_seal(seal) for seal in payload.get("seals", [])]
    _add_equipment(event["payload"], payload.get("size_type"), payload.get("full_empty"), seals)
    if payload.get("location"):
        event["payload"]["location"] = {"locationType": "UNLO", "UNLocationCode": payload["location"]}
    return [event]


def _seal(seal: dict[str, Any]) -> dict[str, Any]:
    found = {"number": seal["raw"]}
    source = SEAL_SOURCES.get((seal.get("party") or "").upper())
    if source:
        found["source"] = source
    if seal.get("seal_type"):
        found["type"] = seal["seal_type"]
    return found


def _add_equipment(
    payload: dict[str, Any], size_type: str | None, full_empty: str | None, seals: list[dict[str, Any]]
) -> None:
    if size_type:
        payload["ISOEquipmentCode"] = size_type
    if full_empty in _EMPTY:
        payload["emptyIndicatorCode"] = _EMPTY[full_empty]
    if seals:
        payload["seals"] = seals


def _releases(
    conn: Connection, sites: list[str], number: str, locodes: dict[str, str | None]
) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        SELECT d.declaration_number, d.site_id, d.status_changed_at FROM declaration_containers dc
        JOIN declarations d USING (declaration_number)
        WHERE dc.container_number = %s AND d.site_id = ANY(%s) AND d.status = 'released'
        """,
        (number, sites),
    ).fetchall()
    events = []
    for declaration, site_id, changed_at in rows:
        event_id = uuid.uuid5(_CUSR_NAMESPACE, f"{declaration.strip()}|{number}|{changed_at.isoformat()}")
        event = _event(event_id, changed_at, changed_at, "CUSR", number, locodes.get(site_id))
        event["payload"]["relatedDocumentReferences"] = [{"type": "CCD", "value": declaration.strip()}]
        events.append(event)
    return events
