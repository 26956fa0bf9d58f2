"""Weighbridge indicators that stream weight frames continuously over TCP.

Accepted frame (one per line, ``\\r\\n`` or ``\\n``), the continuous output of the
A&D-style indicators common at Chinese weighbridges and of most serial-to-TCP
converters in front of them::

    ST,GS,+0035420kg       stable, gross, 35,420 kg
    US,GS,+0035380kg       unstable (the truck is still moving): ignored
    OL,GS,+9999999kg       overload: ignored

The first field is the stability header (``ST`` stable, ``US`` unstable, ``OL``
overload), the second the weight kind (``GS`` gross, ``NT`` net, ``TR`` tare; only
gross weights join a passage), the third a signed number with an optional decimal
point and the unit ``kg`` or ``t``. A weight is used only after
``stable_frames`` consecutive ``ST,GS`` frames show the same value, and each
settled value is joined to the passage once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

FRAME = re.compile(
    r"^(?P<state>ST|US|OL),(?P<kind>GS|NT|TR),\s*(?P<value>[+-]?\s*\d+(?:\.\d+)?)\s*(?P<unit>kg|t)$",
    re.IGNORECASE,
)
# A truck on the bridge weighs more than this; lighter stable readings are the empty
# bridge or a person and end the current settled value.
EMPTY_BRIDGE_KG = 500.0


class WeightFrameError(ValueError):
    """A line from the indicator is not a weight frame."""


@dataclass(frozen=True)
class WeightFrame:
    stable: bool
    overload: bool
    kind: str
    kg: float


def parse_weight_frame(line: str) -> WeightFrame:
    match = FRAME.match(line.strip())
    if match is None:
        raise WeightFrameError(f"weighbridge frame {line[:40]!r} is not 'ST|US|OL,GS|NT|TR,<weight>kg|t'")

    value = float(match["value"].replace(" ", ""))
    kg = value * 1000 if match["unit"].lower() == "t" else value
    state = match["state"].upper()
    return WeightFrame(stable=state == "ST", overload=state == "OL", kind=match["kind"].upper(), kg=kg)


class StableWeight:
    """Turn a continuous frame stream into settled gross weights."""

    def __init__(
        self, sensor_id: str, stable_frames: int, on_weight: Callable[[dict[str, Any]], object]
    ) -> None:
        self.sensor_id = sensor_id
        self.stable_frames = stable_frames
        self.on_weight = on_weight
        self.invalid_frames = 0
        self._candidate: float | None = None
        self._count = 0
        self._reported: float | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        """Take one line; return the weight read when this frame settles a new value."""
        try:
            frame = parse_weight_frame(line)
        except WeightFrameError as exc:
            self.invalid_frames += 1
            logger.warning("Weighbridge %s: %s", self.sensor_id, exc)
            return None

        if not frame.stable or frame.kind != "GS":
            self._candidate, self._count = None, 0
            return None
        if frame.kg < EMPTY_BRIDGE_KG:
            self._candidate, self._count, self._reported = None, 0, None
            return None

        if frame.kg == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = frame.kg, 1
        if self._count < self.stable_frames or frame.kg == self._reported:
            return None

        self._reported = frame.kg
        weight = {
            "kg": frame.kg,
            "source": "scale",
            "sensor_id": self.sensor_id,
            "stable": True,
            "read_at": datetime.now(UTC).isoformat(),
        }
        self.on_weight(weight)
        return weight
