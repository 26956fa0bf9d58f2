from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


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


class ContainerPublic(BaseModel):
    container_number: str
    owner_code: str
    category: str
    current: VisitPublic = Field(description="The latest visit")
    declaration: DeclarationRef | None
    previous_visits: int
