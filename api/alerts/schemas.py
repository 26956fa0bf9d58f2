from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.params import Reason

AlertStatus = Literal["open", "acknowledged", "resolved"]


class AlertPublic(BaseModel):
    alert_id: int
    site_id: str
    rule_code: str = Field(description="Stable rule code, e.g. seal_mismatch")
    severity: Literal["info", "warning", "critical"]
    status: AlertStatus
    subject_kind: str = Field(description="visit, device, lane or passage")
    subject_id: str
    visit_id: int | None
    container_number: str | None
    declaration_number: str | None
    device_id: str | None
    lane_id: str | None
    message: str = Field(description="message_zh or message_en, by Accept-Language")
    message_zh: str
    message_en: str
    evidence: dict[str, Any] = Field(description="Event ids, declared and observed values")
    first_raised_at: datetime
    last_raised_at: datetime
    occurrences: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledge_reason: str | None
    resolved_by: str | None = Field(description="null when Kouan cleared the alert itself")
    resolved_at: datetime | None
    resolve_reason: str | None


class AlertAction(BaseModel):
    """The reason for acknowledging or resolving an alert, stored in the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
