"""Simulated lane devices: plausible passages on a timer, for demos and simulators."""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime

from edge.adapters.lane import LaneFusion
from edge.outbox import OutboxFull
from simulators import reference

logger = logging.getLogger(__name__)


def simulated_passages(fusion: LaneFusion, stop: threading.Event, interval_s: float) -> None:
    """Drive the lane fusion with one truck's reads every ``interval_s`` seconds."""
    rng = random.Random()
    while not stop.wait(interval_s):
        kind = reference.size_type(rng)
        now = datetime.now(UTC).isoformat()
        fusion.arrival()
        fusion.add_plate(
            {"raw": reference.tractor_plate(rng), "source": "lpr", "confidence": 0.96, "read_at": now}
        )
        fusion.add_container(
            {"raw": reference.container_number(rng), "source": "ocr", "confidence": 0.97, "read_at": now},
            {"raw": kind.code, "source": "ocr"},
        )
        fusion.add_seal({"raw": reference.seal_number(rng), "source": "ocr", "read_at": now})
        fusion.add_weight({"kg": reference.gross_weight_kg(rng, kind), "source": "scale", "stable": True})
        try:
            fusion.departure()
        except OutboxFull as exc:
            logger.error("Lane %s: simulated passage rejected: %s", fusion.lane_id, exc)
