from __future__ import annotations

from pydantic import Field

from kouan.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Settings of ``kouan api`` (environment prefix ``KOUAN_``)."""

    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=16, ge=1, description="Database connections at most")
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, description="Largest request body accepted")
