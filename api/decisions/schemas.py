from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.params import Reason


class DecisionReason(BaseModel):
    code: str
    message: str = Field(description="message_zh or message_en, by Accept-Language")
    message_zh: str
    message_en: str


class DecisionPublic(BaseModel):
    command_id: UUID
    site_id: str
    lane_id: str
    device_id: str
    passage_id: str
    event_id: UUID | None
    container_numbers: list[str]
    decision: Literal["release", "hold", "manual"]
    reasons: list[DecisionReason]
    issued_at: datetime
    valid_until: datetime
    overrides: UUID | None = Field(description="The hold this decision overrides")
    overridden_by: UUID | None = Field(description="The officer's decision that overrides this one")
    issued_by: str | None = Field(description="The officer; null for Kouan's own decisions")


class OverridePublic(DecisionPublic):
    published: bool = Field(
        description="Whether the broker accepted the command for the lane; false means the lane "
        "did not get it and the officer must release the truck by hand"
    )


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
