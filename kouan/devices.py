"""Device provisioning: key pair, broker credentials, registry row and ACL.

Files under ``$KOUAN_HOME``:

- ``devices/{device_id}/device.json``: what the edge agent needs to run as the device
  (ids, broker user and password); ``devices/{device_id}/key.pem``: its Ed25519
  private key. Both stay on the edge computer in a real deployment.
- ``secrets/devices/{device_id}.broker``: the broker credentials and site, from which
  the Mosquitto password and ACL files are regenerated.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from kouan.signing import generate_private_key, load_private_key, public_key_bytes, save_private_key

logger = logging.getLogger(__name__)

DEVICE_KINDS = ("lane", "scanner", "eseal_reader", "tos_feed")


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    site_id: str
    lane_id: str | None
    kind: str
    mqtt_username: str
    mqtt_password: str

    @staticmethod
    def directory(home: Path, device_id: str) -> Path:
        return home / "devices" / device_id

    @classmethod
    def load(cls, home: Path, device_id: str) -> DeviceIdentity:
        path = cls.directory(home, device_id) / "device.json"
        if not path.exists():
            raise FileNotFoundError(
                f"Device {device_id!r} is not provisioned under {home}: run "
                f"`kouan device add {device_id} --site SITE`"
            )
        return cls(**json.loads(path.read_text()))

    def key_path(self, home: Path) -> Path:
        return self.directory(home, self.device_id) / "key.pem"


def ensure_site(
    conn: psycopg.Connection,
    site_id: str,
    name: str | None = None,
    locode: str | None = None,
    customs_district: str | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO sites (site_id, name, locode, customs_district) VALUES (%s, %s, %s, %s)
        ON CONFLICT (site_id) DO UPDATE SET
            name = coalesce(EXCLUDED.name, sites.name),
            locode = coalesce(EXCLUDED.locode, sites.locode),
            customs_district = coalesce(EXCLUDED.customs_district, sites.customs_district)
        """,
        (site_id, name or site_id, locode, customs_district),
    )


def ensure_lane(conn: psycopg.Connection, site_id: str, lane_id: str, direction: str) -> None:
    conn.execute(
        """
        INSERT INTO lanes (site_id, lane_id, direction) VALUES (%s, %s, %s)
        ON CONFLICT (site_id, lane_id) DO UPDATE SET direction = EXCLUDED.direction
        """,
        (site_id, lane_id, direction),
    )


def provision(
    home: Path,
    database_url: str,
    device_id: str,
    site_id: str,
    lane_id: str | None = None,
    kind: str = "lane",
) -> DeviceIdentity:
    """Create (or reuse) a device's key pair and broker credentials and register it.

    Provisioning an existing device keeps its key and password, so running it twice
    changes nothing.
    """
    if kind not in DEVICE_KINDS:
        raise ValueError(f"Device kind {kind!r} is not one of {', '.join(DEVICE_KINDS)}")

    directory = DeviceIdentity.directory(home, device_id)
    try:
        identity = DeviceIdentity.load(home, device_id)
        private_key = load_private_key(identity.key_path(home))
    except FileNotFoundError:
        identity = DeviceIdentity(device_id, site_id, lane_id, kind, device_id, secrets.token_urlsafe(24))
        private_key = generate_private_key()
        save_private_key(private_key, identity.key_path(home))
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "device.json").write_text(json.dumps(asdict(identity), indent=2))
        (directory / "device.json").chmod(0o600)

    broker_file = home / "secrets" / "devices" / f"{device_id}.broker"
    broker_file.parent.mkdir(parents=True, exist_ok=True)
    broker_file.write_text(f"{identity.mqtt_username}:{identity.mqtt_password}:{identity.site_id}\n")
    broker_file.chmod(0o600)

    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        ensure_site(conn, identity.site_id)
        conn.execute(
            """
            INSERT INTO devices (device_id, site_id, lane_id, kind, public_key)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (device_id) DO UPDATE SET
                site_id = EXCLUDED.site_id, lane_id = EXCLUDED.lane_id,
                kind = EXCLUDED.kind, public_key = EXCLUDED.public_key, enabled = true
            """,
            (device_id, identity.site_id, identity.lane_id, identity.kind, public_key_bytes(private_key)),
        )
    logger.info("Provisioned device %s at site %s", device_id, identity.site_id)
    return identity


def revoke(home: Path, database_url: str, device_id: str) -> bool:
    """Disable a device in the registry and remove its broker credentials; return whether it existed.

    The key pair stays under ``devices/{device_id}`` so that events already signed
    with it remain verifiable by whoever holds its public key in the registry.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE devices SET enabled = false WHERE device_id = %s RETURNING device_id", (device_id,)
        ).fetchone()
    broker_file = home / "secrets" / "devices" / f"{device_id}.broker"
    had_credentials = broker_file.exists()
    broker_file.unlink(missing_ok=True)
    logger.info("Revoked device %s (registry: %s, broker user: %s)", device_id, bool(row), had_credentials)
    return row is not None or had_credentials


def device_rows(database_url: str, site_id: str | None = None) -> list[dict[str, object]]:
    """Return each registered device with its health as the collector last saw it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(
            """
            SELECT device_id, site_id, lane_id, kind, enabled, last_seen_at, last_seq, contiguous_seq,
                   clock_offset_ms, status->>'state' AS state,
                   (status->>'outbox_depth')::bigint AS outbox_depth
            FROM devices WHERE %(site)s::text IS NULL OR site_id = %(site)s
            ORDER BY site_id, device_id
            """,
            {"site": site_id},
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
