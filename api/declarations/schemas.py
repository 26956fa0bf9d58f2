from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.params import Moment, Reason

DeclarationStatus = Literal["declared", "inspection_ordered", "released", "held", "cancelled"]


class DeclaredContainerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container_number: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    size_type: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{4}$")] | None = None
    seal_numbers: Annotated[list[Annotated[str, StringConstraints(max_length=32)]], Field(max_length=8)] = []
    gross_weight_kg: Annotated[float, Field(gt=0, le=200_000)] | None = None


class DeclarationPut(BaseModel):
    """A customs declaration (报关单) as filed through the single window."""

    model_config = ConfigDict(extra="forbid")

    site_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: DeclarationStatus = "declared"
    direction: Literal["import", "export"] | None = Field(
        default=None, description="Derived from the number's import/export flag when omitted"
    )
    consignee_code: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, description="统一社会信用代码 of the consignee or consignor"
    )
    consignee_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    declared_at: Moment | None = None
    containers: Annotated[list[DeclaredContainerIn], Field(min_length=1, max_length=500)]


class DeclaredContainerPublic(BaseModel):
    container_number: str
    size_type: str | None
    seal_numbers: list[str]
    gross_weight_kg: float | None
    visit_status: str | None = Field(description="entered, scanned, exited, or null when not seen yet")
    entered_at: datetime | None
    scanned_at: datetime | None
    exited_at: datetime | None
    flags: list[str]


class DeclarationPublic(BaseModel):
    declaration_number: str
    site_id: str
    customs_district: str
    direction: str
    status: DeclarationStatus
    consignee_code: str | None
    consignee_name: str | None
    declared_at: datetime
    status_changed_at: datetime
    version: int
    containers: list[DeclaredContainerPublic]
    counts: dict[str, int] = Field(description="containers arrived, scanned, exited and missing")


class DeclarationStatusChange(BaseModel):
    """A status change on the declaration's lifecycle, with the reason recorded in the audit log."""

    model_config = ConfigDict(extra="forbid")

    status: DeclarationStatus
    reason: Reason


class DeclarationSummary(BaseModel):
    declaration_number: str
    site_id: str
    customs_district: str
    direction: str
    status: DeclarationStatus
    declared_at: datetime
    status_changed_at: datetime
    version: int
    containers: int
