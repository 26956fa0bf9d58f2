from __future__ import annotations

from pydantic import Field

from kouan.settings import CommonSettings


class CollectorSettings(CommonSettings):
    """Settings of ``kouan collector`` (environment prefix ``KOUAN_``)."""

    client_id: str = Field(
        default="kouan-collector-1",
        description="MQTT client id; stable across restarts so the broker keeps the session's "
        "queued messages for it",
    )
    share_group: str = Field(default="collectors", description="MQTT shared-subscription group")
    site_filter: str = Field(default="+", description="Site id to consume, or + for every site on the broker")
    batch_max_events: int = Field(
        default=2000, ge=1, le=50_000, description="Events written per transaction at most"
    )
    batch_wait_ms: int = Field(
        default=10,
        ge=0,
        le=5_000,
        description="How long a batch waits for more events before it is written",
    )
    queue_max_messages: int = Field(
        default=50_000,
        ge=100,
        description="Messages received but not yet written; the MQTT client stops reading "
        "past this, and the broker keeps the rest queued",
    )
    registry_refresh_s: float = Field(
        default=0.2, ge=0.05, description="Minimum seconds between device-registry reloads on a miss"
    )
    clock_drift_limit_s: float = Field(
        default=120.0,
        ge=0,
        description="Device clock offset (receive time minus sent_at) that raises an alert",
    )
