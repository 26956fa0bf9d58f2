from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from collector.correlation.rules import RuleSettings
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
    receive_maximum: int = Field(
        default=20_000,
        ge=1,
        le=65_535,
        description="Unacknowledged messages the broker may send this collector (MQTT 5 Receive "
        "Maximum); messages are acknowledged after their commit, so this is the backlog the "
        "collector holds in memory, where exit passages overtake it, instead of the broker",
    )
    registry_refresh_s: float = Field(
        default=0.2, ge=0.05, description="Minimum seconds between device-registry reloads on a miss"
    )
    registry_max_age_s: float = Field(
        default=30.0, gt=0, description="Seconds after which a revoked or re-keyed device is rejected"
    )
    clock_drift_limit_s: float = Field(
        default=120.0,
        ge=0,
        description="Device clock offset (receive time minus sent_at) that raises an alert",
    )
    weight_tolerance_percent: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="Allowed difference between weighed and declared gross weight, in percent of "
        "the declared weight; weighbridges at ports are verified to a fraction of a percent, and "
        "declared weights are often estimates",
    )
    weight_tolerance_kg: float = Field(
        default=500.0,
        ge=0,
        description="Allowed weight difference in kg at least, whatever the percentage gives; "
        "covers light containers, where a few percent is less than the scale's step",
    )
    dwell_limit_hours: float = Field(
        default=72.0,
        gt=0,
        description="Stay from gate-in beyond which a container raises dwell_exceeded, in hours; "
        "72 h is a common free-time limit at Chinese terminals",
    )
    dwell_sweep_interval_s: float = Field(
        default=60.0,
        ge=1,
        description="Seconds between sweeps that evaluate dwell of visits without new events",
    )
    ocr_confidence_min: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="OCR confidence (0-1) below which a valid container number read raises "
        "ocr_low_confidence",
    )
    stale_sensor_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds without an event or status from another device of an exit lane "
        "after which that lane's decisions become manual",
    )
    decision_valid_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a gate decision stays valid; the lane never acts on it later",
    )
    writer_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Nice increment of the batch writer process, so that gate decisions, the API "
        "and the database get the CPU first when ingest saturates it; the broker and the edge "
        "outboxes hold the backlog meanwhile",
    )
    decision_queue_max: int = Field(
        default=1_000,
        ge=10,
        description="Exit passages awaiting a decision at most; past this the MQTT thread waits",
    )

    def rule_settings(self) -> RuleSettings:
        """Return the rule tolerances and limits for the pure correlation core."""
        return RuleSettings(
            weight_tolerance_percent=self.weight_tolerance_percent,
            weight_tolerance_kg=self.weight_tolerance_kg,
            dwell_limit=timedelta(hours=self.dwell_limit_hours),
            ocr_confidence_min=self.ocr_confidence_min,
        )
