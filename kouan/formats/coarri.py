"""COARRI (container discharge/loading report) messages as equipment events.

BGM document name codes per the SMDG COARRI user manual (D.95B): 44 discharge
report, 46 loading report (also 98/270 in some terminal profiles, not accepted here
until a partner sends them).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kouan.formats.edifact import Interchange, Message
from kouan.formats.moves import MessageMoves, map_message

EVENT_CODES = {"44": "DISC", "46": "LOAD"}


def map_coarri(message: Message, interchange: Interchange, zone: ZoneInfo) -> MessageMoves:
    """Return one DISC or LOAD payload per container of a COARRI message."""
    return map_message(message, interchange, EVENT_CODES, "COARRI", zone)
