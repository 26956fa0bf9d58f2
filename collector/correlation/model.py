"""Values the correlation core works on. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

DECLARATION_STATUSES = ("declared", "inspection_ordered", "released", "held", "cancelled")


@dataclass(frozen=True)
class Observation:
    """What one event says about one container, reduced to what correlation needs."""

    event_id: str
    device_id: str
    seq: int
    kind: str
    occurred_at: datetime
    lane_id: str | None = None
    direction: str | None = None
    truck_plate: str | None = None
    seal_numbers: tuple[str, ...] = ()
    gross_weight_kg: float | None = None
    size_type: str | None = None
    scan_result: str | None = None
    eseal: dict[str, bool] | None = None
    declaration_number: str | None = None
    corrected: bool = False
    decision_requested: bool = False
    # Every container number the passage named, so weight is compared per truck load.
    passage_containers: tuple[str, ...] = ()
    passage_id: str | None = None
    # Set on observations that come from an officer's read.correction event.
    corrects_event_id: str | None = None
    correction_field: str | None = None
    original_value: str | None = None
    corrected_value: str | None = None

    @property
    def sort_key(self) -> tuple[datetime, str, int]:
        """Order from the device, not the network: occurred_at, then device and seq."""
        return (self.occurred_at, self.device_id, self.seq)

    def to_json(self) -> dict[str, Any]:
        """Return the fields that differ from their defaults, as stored in a visit's state."""
        document: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "occurred_at":
                document[item.name] = value.isoformat()
            elif isinstance(value, tuple):
                if value:
                    document[item.name] = list(value)
            elif value is not None and value is not False:
                document[item.name] = value
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Observation:
        values = dict(document)
        values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
        for name in ("seal_numbers", "passage_containers"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@dataclass(frozen=True)
class DeclaredContainer:
    container_number: str
    seal_numbers: tuple[str, ...] = ()
    gross_weight_kg: float | None = None
    size_type: str | None = None


@dataclass(frozen=True)
class Declaration:
    declaration_number: str
    status: str
    direction: str
    container: DeclaredContainer
    other_holds: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisitState:
    """One container's stay at a site: every observation, in device order."""

    site_id: str
    container_number: str
    observations: tuple[Observation, ...] = ()

    def with_observation(self, observation: Observation) -> VisitState:
        if any(item.event_id == observation.event_id for item in self.observations):
            return self
        merged = sorted((*self.observations, observation), key=lambda item: item.sort_key)
        return VisitState(self.site_id, self.container_number, tuple(merged))


@dataclass(frozen=True)
class VisitSummary:
    """The latest-state columns of a visit, derived from its observations."""

    status: str
    first_seen_at: datetime
    last_event_at: datetime
    entered_at: datetime | None
    scanned_at: datetime | None
    exited_at: datetime | None
    entry_lane: str | None
    exit_lane: str | None
    truck_plate: str | None
    seal_numbers: tuple[str, ...]
    gross_weight_kg: float | None
    size_type: str | None
    declaration_number: str | None
    customs_status: str
    flags: tuple[str, ...] = field(default=())
