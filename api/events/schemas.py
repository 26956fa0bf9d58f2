from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.params import IDENTIFIER_PATTERN, Reason


class FeedEvent(BaseModel):
    event_id: UUID
    site_id: str
    device_id: str
    seq: int
    kind: str
    lane_id: str | None
    occurred_at: datetime
    received_at: datetime
    stored_at: datetime = Field(description="Commit order key of the feed")
    container_numbers: list[str]


class CorrectionRequest(BaseModel):
    """An officer's correction of one misread value; the original event stays as stored."""

    model_config = ConfigDict(extra="forbid")

    site_id: Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
    field: Literal["container_number", "seal_number"]
    corrected: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    original: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="Raw or normalised value of the read to correct, when the event has several"
    )
    reason: Reason


class CorrectionPublic(BaseModel):
    event_id: UUID = Field(description="The corrected event")
    correction_event_id: UUID = Field(description="The new read.correction event")
