"""Lane fusion: the reads of one truck's passage joined into one ``gate.passage`` event.

A truck's arrival (a loop detector, a light curtain, or the first read of any
camera) opens a passage. Container OCR, plate recognition, weight and seal reads
join the open passage, each kept with its provenance: raw text, source, confidence,
sensor id, read time and image reference. The passage closes on departure, or
``timeout_s`` after it opened when no departure comes, and becomes one event.

A lane holds one truck at a time, so at most one passage is open.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kouan.identifiers import ContainerNumberError, parse_container_number

logger = logging.getLogger(__name__)

# Recently closed passages whose containers a gate decision is checked against.
RECENT_PASSAGES = 256
MAX_CONTAINERS = 4
MAX_SEALS = 8

Emit = Callable[[dict[str, Any], datetime], int]


@dataclass
class _Container:
    read: dict[str, Any]
    size_type: dict[str, Any] | None = None
    position: str | None = None
    seals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Passage:
    passage_id: str
    opened_at: datetime
    opened_monotonic: float
    tractor_plate: dict[str, Any] | None = None
    trailer_plate: dict[str, Any] | None = None
    containers: dict[str, _Container] = field(default_factory=dict)
    loose_seals: list[dict[str, Any]] = field(default_factory=list)
    weight: dict[str, Any] | None = None
    declaration_number: str | None = None


def container_key(raw: str) -> str:
    """Return the value two reads of the same container share: the parsed number, or the raw text."""
    try:
        return parse_container_number(raw).value
    except ContainerNumberError:
        return raw.strip().upper()


class LaneFusion:
    def __init__(
        self,
        lane_id: str,
        direction: str,
        emit: Emit,
        timeout_s: float,
        decision_requested: bool | None = None,
    ) -> None:
        self.lane_id = lane_id
        self.direction = direction
        self.emit = emit
        self.timeout_s = timeout_s
        self.decision_requested = direction == "out" if decision_requested is None else decision_requested
        self._lock = threading.RLock()
        self._open: _Passage | None = None
        self._recent: OrderedDict[str, set[str]] = OrderedDict()
        self._numbers = itertools.count(1)

    # --- frames -------------------------------------------------------------------------

    def arrival(self, at: datetime | None = None, passage_id: str | None = None) -> str:
        """Open a passage; a passage still open is closed first (the truck left unseen)."""
        with self._lock:
            if self._open is not None:
                self._close("next arrival")
            return self._start(at or datetime.now(UTC), passage_id).passage_id

    def add_container(
        self, read: dict[str, Any], size_type: dict[str, Any] | None = None, position: str | None = None
    ) -> str:
        with self._lock:
            passage = self._current(read)
            key = container_key(read["raw"])
            known = passage.containers.get(key)
            if known is None:
                if len(passage.containers) >= MAX_CONTAINERS:
                    raise ValueError(f"passage {passage.passage_id} already has {MAX_CONTAINERS} containers")
                passage.containers[key] = _Container(read, size_type, position)
            elif (read.get("confidence") or 0) > (known.read.get("confidence") or 0):
                # Two cameras read the same container: the more confident read is kept.
                known.read = read
            if known is not None:
                known.size_type = known.size_type or size_type
                known.position = known.position or position
            return passage.passage_id

    def add_plate(self, read: dict[str, Any], trailer: bool = False) -> str:
        with self._lock:
            passage = self._current(read)
            if trailer:
                passage.trailer_plate = _better(passage.trailer_plate, read)
            else:
                passage.tractor_plate = _better(passage.tractor_plate, read)
            return passage.passage_id

    def add_weight(self, weight: dict[str, Any]) -> str | None:
        """Join a stable weight to the open passage; a weight with no truck in the lane is dropped."""
        with self._lock:
            if self._open is None:
                logger.debug(
                    "Lane %s: weight %s kg with no passage open; ignored", self.lane_id, weight["kg"]
                )
                return None
            self._open.weight = weight
            return self._open.passage_id

    def add_seal(self, read: dict[str, Any], container_raw: str | None = None) -> str | None:
        with self._lock:
            if self._open is None:
                return None
            passage = self._open
            container = passage.containers.get(container_key(container_raw)) if container_raw else None
            seals = container.seals if container is not None else passage.loose_seals
            if all(seal["raw"] != read["raw"] for seal in seals) and len(seals) < MAX_SEALS:
                seals.append(read)
            return passage.passage_id

    def set_declaration(self, number: str) -> None:
        with self._lock:
            if self._open is not None:
                self._open.declaration_number = number

    def departure(self) -> tuple[str, int] | None:
        """Close the open passage; return its id and the event's seq, or None if none was open."""
        with self._lock:
            if self._open is None:
                return None
            return self._close("departure")

    def expire(self) -> tuple[str, int] | None:
        """Close the open passage if it is older than ``timeout_s``."""
        with self._lock:
            if self._open is None or time.monotonic() - self._open.opened_monotonic < self.timeout_s:
                return None
            return self._close("timeout")

    def passage_containers(self, passage_id: str) -> set[str] | None:
        """Return the container numbers of a recent passage of this lane, or None."""
        with self._lock:
            if self._open is not None and self._open.passage_id == passage_id:
                return set(self._open.containers)
            return self._recent.get(passage_id)

    # --- internals ----------------------------------------------------------------------

    def _start(self, at: datetime, passage_id: str | None) -> _Passage:
        number = next(self._numbers)
        passage_id = passage_id or f"{self.lane_id}-{at.astimezone(UTC):%Y%m%dT%H%M%S}-{number}"
        self._open = _Passage(passage_id[:64], at, time.monotonic())
        return self._open

    def _current(self, read: dict[str, Any]) -> _Passage:
        """Return the open passage, opening one at this read when the arrival went unseen."""
        if self._open is not None:
            return self._open
        at = read.get("read_at")
        return self._start(datetime.fromisoformat(at) if at else datetime.now(UTC), None)

    def _close(self, why: str) -> tuple[str, int]:
        passage = self._open
        assert passage is not None
        payload = self._payload(passage)
        # The passage is forgotten only once its event is in the outbox. When the
        # outbox is full and rejects it, the passage stays open for the caller to retry.
        seq = self.emit(payload, passage.opened_at)
        self._open = None
        self._recent[passage.passage_id] = set(passage.containers)
        while len(self._recent) > RECENT_PASSAGES:
            self._recent.popitem(last=False)
        logger.info(
            "Lane %s: passage %s closed on %s with %d containers as seq %d",
            self.lane_id,
            passage.passage_id,
            why,
            len(passage.containers),
            seq,
        )
        return passage.passage_id, seq

    def _payload(self, passage: _Passage) -> dict[str, Any]:
        containers = []
        for index, container in enumerate(passage.containers.values()):
            seals = list(container.seals)
            if index == 0:
                seals = (seals + passage.loose_seals)[:MAX_SEALS]
            item: dict[str, Any] = {"container_number": container.read, "seals": seals}
            if container.size_type is not None:
                item["size_type"] = container.size_type
            if container.position is not None:
                item["position"] = container.position
            containers.append(item)

        payload: dict[str, Any] = {
            "passage_id": passage.passage_id,
            "lane_id": self.lane_id,
            "direction": self.direction,
            "containers": containers,
            "decision_requested": self.decision_requested,
        }
        for name in ("tractor_plate", "trailer_plate"):
            if getattr(passage, name) is not None:
                payload[name] = getattr(passage, name)
        if passage.weight is not None:
            payload["gross_weight"] = passage.weight
        if passage.declaration_number:
            payload["declaration_number"] = passage.declaration_number
        return payload


def _better(current: dict[str, Any] | None, read: dict[str, Any]) -> dict[str, Any]:
    if current is None or (read.get("confidence") or 0) > (current.get("confidence") or 0):
        return read
    return current
