"""One file from a terminal operating system, read into equipment.event payloads.

The format is recognised from the content, not the file name: EDIFACT starts with
UNA, UNB or UNH; DCSA Track and Trace is JSON. Every problem names where it sits
(segment number or event index) and costs only the message or event it is in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kouan.formats import dcsa, edifact
from kouan.formats.coarri import map_coarri
from kouan.formats.codeco import map_codeco

UNSUPPORTED_MESSAGE = "unsupported_message"
UNREADABLE = "unreadable"

_MAPPERS = {"CODECO": map_codeco, "COARRI": map_coarri}


@dataclass
class FeedFile:
    format: str
    sha256: str
    moves: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sender_zone(sender: str | None, default_zone: str, sender_zones: dict[str, str]) -> ZoneInfo:
    """Return the zone of a sending site; EDIFACT times without a zone are in it."""
    name = sender_zones.get(sender or "", default_zone)
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:
        raise ValueError(f"Time zone {name!r} configured for sender {sender!r} is not an IANA zone") from exc


def read_feed_file(data: bytes, default_zone: str, sender_zones: dict[str, str] | None = None) -> FeedFile:
    """Read one dropped file; bad content is reported in the result, not raised.

    Raises ValueError only for configuration: a sender zone that is not an IANA zone.
    """
    digest = hashlib.sha256(data).hexdigest()
    text = edifact.decode(data).lstrip("\ufeff \r\n\t")
    if text.startswith(("[", "{")):
        return _read_dcsa(text, digest)
    if text[:3] in ("UNA", "UNB", "UNH"):
        return _read_edifact(text, digest, default_zone, sender_zones or {})

    feed = FeedFile("unknown", digest)
    feed.problems.append(
        {"code": UNREADABLE, "detail": f"content starts with {text[:12]!r}: neither EDIFACT nor JSON"}
    )
    return feed


def _read_dcsa(text: str, digest: str) -> FeedFile:
    feed = FeedFile("DCSA", digest)
    try:
        document = dcsa.parse_document(json.loads(text))
    except (json.JSONDecodeError, ValueError) as exc:
        feed.problems.append({"code": UNREADABLE, "detail": f"not a DCSA JSON document: {exc}"})
        return feed

    feed.moves = document.moves
    feed.problems = [
        {"code": "invalid_event", **problem.to_json(), "text": str(problem)} for problem in document.problems
    ]
    feed.notes = [f"event {index} skipped: {reason}" for index, reason in document.skipped]
    for _, payload in feed.moves:
        payload["source"]["file_sha256"] = digest
    return feed


def _read_edifact(text: str, digest: str, default_zone: str, sender_zones: dict[str, str]) -> FeedFile:
    feed = FeedFile("EDIFACT", digest)
    try:
        interchange = edifact.parse_interchange(text)
    except edifact.EdifactError as exc:
        feed.problems.append({"code": UNREADABLE, "detail": str(exc)})
        return feed

    zone = sender_zone(interchange.sender, default_zone, sender_zones)
    feed.problems.extend({**problem.to_json(), "text": str(problem)} for problem in interchange.problems)
    for message in interchange.messages:
        feed.problems.extend({**problem.to_json(), "text": str(problem)} for problem in message.problems)
        if not message.sound:
            feed.notes.append(f"message {message.reference} not imported: its envelope has problems")
            continue
        mapper = _MAPPERS.get(message.message_type)
        if mapper is None:
            first = message.segments[0]
            feed.problems.append(
                {
                    "code": UNSUPPORTED_MESSAGE,
                    "segment": first.position,
                    "tag": "UNH",
                    "message_ref": message.reference,
                    "detail": f"{message.message_type} is not a terminal feed message (CODECO, COARRI)",
                }
            )
            continue
        moves = mapper(message, interchange, zone)
        feed.problems.extend({**problem.to_json(), "text": str(problem)} for problem in moves.problems)
        for occurred_at, payload in moves.moves:
            payload["source"]["file_sha256"] = digest
            feed.moves.append((occurred_at, payload))
    feed.problems.sort(key=lambda problem: problem.get("segment") or 0)
    return feed
