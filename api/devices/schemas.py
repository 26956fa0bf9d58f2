from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Health = Literal["ok", "stale", "offline", "never_seen", "disabled"]


class DevicePublic(BaseModel):
    device_id: str
    site_id: str
    lane_id: str | None
    kind: str
    enabled: bool
    health: Health = Field(
        description="disabled; never_seen; offline (its latest status message reported it); "
        "stale (no event or status in the last 60 s); else ok"
    )
    online: bool | None = Field(
        description="From the device's retained status message; null before the first"
    )
    last_seen_at: datetime | None = Field(description="Receive time of the device's latest event")
    last_seq: int
    seq_gaps: int
    clock_offset_ms: float | None = Field(
        description="Receive minus send time of the latest event, ms: clock drift plus network delay"
    )
    outbox_depth: int | None = Field(description="Events waiting in the device's outbox, as it last reported")
    outbox_capacity: int | None
    status: dict[str, Any] | None = Field(description="The device's latest status message as published")
    status_at: datetime | None


class LanePublic(BaseModel):
    site_id: str
    lane_id: str
    direction: Literal["in", "out", "scan"]
    mode: Literal["automatic", "manual"]
    mode_reason: str | None
    updated_at: datetime
    devices: int
    devices_ok: int
    open_alerts: int
