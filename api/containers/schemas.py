from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from api.alerts.schemas import AlertPublic


class DeclarationRef(BaseModel):
    declaration_number: str
    status: str
    direction: str


class VisitPublic(BaseModel):
    visit_id: int
    site_id: str
    status: str = Field(description="seen, entered, scanned or exited")
    customs_status: str = Field(
        description="undeclared, declared, inspection_ordered, released, held, cancelled"
    )
    declared: bool
    released: bool
    first_seen_at: datetime
    entered_at: datetime | None
    scanned_at: datetime | None
    exited_at: datetime | None
    last_event_at: datetime
    entry_lane: str | None
    exit_lane: str | None
    truck_plate: str | None
    seal_numbers: list[str]
    gross_weight_kg: float | None
    size_type: str | None
    flags: list[str]
    event_count: int


class VisitSummary(VisitPublic):
    container_number: str
    declaration_number: str | None


class ContainerPublic(BaseModel):
    container_number: str
    owner_code: str
    category: str
    current: VisitPublic = Field(description="The latest visit")
    declaration: DeclarationRef | None
    previous_visits: int


class TimelineEvent(BaseModel):
    event_id: UUID
    device_id: str
    seq: int
    kind: str
    lane_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    received_at: datetime
    payload: dict[str, Any] = Field(description="The payload as the device signed it, raw reads included")
    reads: dict[str, Any] = Field(
        description="Each read normalised: raw text, value, source, confidence, validity and the reason"
    )


class TimelinePublic(BaseModel):
    container_number: str
    since: datetime = Field(description="Start of the window, inclusive (occurred_at)")
    until: datetime = Field(description="End of the window, exclusive")
    visits: list[VisitSummary] = Field(description="The container's visits that overlap the window")
    alerts: list[AlertPublic] = Field(description="Alerts of those visits with their evidence (at most 500)")
    items: list[TimelineEvent] = Field(description="Events in device order: occurred_at, then seq")
    next_cursor: str | None
