"""Settings shared by every Kouan process.

Each process has one pydantic-settings class read from the environment with the
``KOUAN_`` prefix. The broker and database addresses default to the embedded stack
(``kouan stack up``) and can point at an existing broker and database instead.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Ports of the embedded stack: chosen away from the defaults (1883, 5432) so that a
# broker or database already on the machine keeps running untouched.
STACK_MQTT_PORT = 18830
STACK_PG_PORT = 54330
STACK_API_PORT = 8640


def default_home() -> Path:
    """Return the directory that holds the embedded stack's data and secrets."""
    return Path.cwd() / ".kouan"


class CommonSettings(BaseSettings):
    """Broker, database and site settings that every process reads."""

    model_config = SettingsConfigDict(env_prefix="KOUAN_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Stack data and secrets")
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = STACK_MQTT_PORT
    mqtt_username: str | None = Field(
        default=None, description="Broker user; the stack's service user when unset"
    )
    mqtt_password: str | None = None
    stack_pg_port: int = Field(default=STACK_PG_PORT, description="Port of the embedded PostgreSQL")
    database_url: str = Field(
        default="",
        description="libpq URL of the TimescaleDB database; the embedded stack's when empty",
    )
    timezone: str = Field(default="Asia/Shanghai", description="Port time zone for daily buckets")

    @model_validator(mode="after")
    def _default_database_url(self) -> CommonSettings:
        if not self.database_url:
            self.database_url = f"postgresql://kouan@127.0.0.1:{self.stack_pg_port}/kouan"
        return self

    def mqtt_credentials(self) -> tuple[str, str] | None:
        """Return the broker user and password, falling back to the stack's service user."""
        if self.mqtt_username:
            return self.mqtt_username, self.mqtt_password or ""

        secret = self.home / "secrets" / "mqtt-service.txt"
        if secret.exists():
            username, password = secret.read_text().strip().split(":", 1)
            return username, password
        return None
