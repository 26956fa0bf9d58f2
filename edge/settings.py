from __future__ import annotations

from pydantic import Field

from kouan.settings import CommonSettings


class EdgeSettings(CommonSettings):
    """Settings of ``kouan edge`` (environment prefix ``KOUAN_``)."""

    device_id: str = Field(default="", description="Device to run as; provisioned by `kouan device add`")
    outbox_capacity: int = Field(
        default=100_000,
        ge=1,
        description="Events kept awaiting a receipt; past this new events are rejected",
    )
    inflight_window: int = Field(
        default=1_000,
        ge=1,
        le=60_000,
        description="Events published but not yet receipted; below MQTT's 65,535 packet ids",
    )
    stall_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without any receipt while events are pending before reconnecting",
    )
    status_interval_s: float = Field(default=15.0, gt=0, description="Seconds between status messages")
    firmware: str = "kouan-edge/0.1"
