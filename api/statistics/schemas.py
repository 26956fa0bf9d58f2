from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class StatisticsBucket(BaseModel):
    bucket_start: datetime = Field(description="Start of the bucket, in the site's time zone")
    lane_id: str | None = Field(description="null for alerts not tied to a lane")
    passages: int = Field(description="gate.passage events that occurred in the bucket")
    alerts: int = Field(description="Alerts first raised in the bucket")
    decisions_release: int
    decisions_hold: int
    decisions_manual: int


class StatisticsPublic(BaseModel):
    site_id: str
    timezone: str = Field(description="The site's time zone; hour and day buckets follow its clock")
    bucket: Literal["hour", "day"]
    since: datetime
    until: datetime
    items: list[StatisticsBucket]
    next_cursor: None = Field(default=None, description="Always null: the time range bounds the list")
