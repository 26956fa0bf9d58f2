from __future__ import annotations

from pydantic import Field

from kouan.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Settings of ``kouan api`` (environment prefix ``KOUAN_``)."""

    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=16, ge=1, description="Database connections at most")
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, description="Largest request body accepted")

    jwt_secret: str = Field(
        default="",
        description="HS256 key for access tokens; read from (or created in) KOUAN_HOME/secrets when empty",
    )
    token_ttl_s: int = Field(default=8 * 3600, ge=60, le=86_400, description="Access token lifetime, seconds")

    # Per caller (user or API key), per API process, in a sliding window of 60 s.
    rate_limit_per_minute: int = Field(default=1200, ge=1, description="Requests per caller per minute")
    login_limit_per_minute: int = Field(
        default=10, ge=1, description="Login attempts per client address and username per minute"
    )

    stream_max_clients: int = Field(default=100, ge=1, description="Live streams open at once per process")
    stream_poll_s: float = Field(default=1.0, gt=0, le=30, description="Live stream database poll interval")
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="Live stream heartbeat interval"
    )
    stream_max_duration_s: int = Field(
        default=3600, ge=1, description="A live stream ends after this long; clients reconnect"
    )
    feed_settle_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="The event feed serves only events stored at least this long ago, so that a "
        "transaction committing late cannot slip behind a cursor",
    )
    override_valid_s: int = Field(
        default=30, ge=5, le=3600, description="Seconds a lane may act on an override"
    )
    metrics_cache_s: float = Field(
        default=10.0, ge=0, description="How long database-derived metrics are reused"
    )
