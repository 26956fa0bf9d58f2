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
        description="Events published but not yet receipted; also capped by the broker's Receive Maximum",
    )
    stall_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without any receipt while events are in flight before reconnecting",
    )
    stall_timeout_max_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest stall timeout; it doubles after each stall without receipts",
    )
    status_interval_s: float = Field(default=15.0, gt=0, description="Seconds between status messages")
    keepalive_s: int = Field(default=15, ge=5, le=600, description="MQTT keep alive in seconds")
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        description="Seconds the broker keeps the session (queued commands and receipts) while offline",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First delay before reconnecting")
    reconnect_max_s: float = Field(default=10.0, gt=0, description="Longest delay between reconnect attempts")
    firmware: str = "kouan-edge/0.1"

    # Device adapters; each runs only when configured.
    http_port: int | None = Field(
        default=None, description="Port of the HTTP endpoint OCR and plate cameras post results to"
    )
    http_host: str = Field(default="127.0.0.1", description="Address the camera endpoint listens on")
    weighbridge_host: str | None = Field(default=None, description="Weighbridge indicator's TCP host")
    weighbridge_port: int | None = Field(default=None, description="Weighbridge indicator's TCP port")
    weighbridge_stable_frames: int = Field(
        default=3, ge=1, description="Consecutive equal stable frames before a weight is used"
    )
    eseal_host: str | None = Field(default=None, description="E-seal reader's TCP host")
    eseal_port: int | None = Field(default=None, description="E-seal reader's TCP port")
    lane_direction: str = Field(
        default="in", pattern="^(in|out)$", description="Direction of the lane's passages: in or out"
    )
    passage_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds after arrival at which an open passage is closed"
    )
    simulated: bool = Field(
        default=False, description="Run the simulated lane that emits a passage every simulated_interval_s"
    )
    simulated_interval_s: float = Field(default=5.0, gt=0, description="Seconds between simulated passages")
    barrier_log: str | None = Field(
        default=None, description="File the simulated barrier appends each action to (JSON lines)"
    )
