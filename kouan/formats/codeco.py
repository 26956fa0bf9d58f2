"""CODECO (container gate-in/gate-out report) messages as equipment events.

BGM document name codes per the SMDG CODECO user manual (D.95B): 34 gate-in
report, 36 gate-out report.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kouan.formats.edifact import Interchange, Message
from kouan.formats.moves import MessageMoves, map_message

EVENT_CODES = {"34": "GTIN", "36": "GTOT"}


def map_codeco(message: Message, interchange: Interchange, zone: ZoneInfo) -> MessageMoves:
    """Return one GTIN or GTOT payload per container of a CODECO message."""
    return map_message(message, interchange, EVENT_CODES, "CODECO", zone)
