"""The collector's cached view of the device registry (table ``devices``)."""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from collector.ingest import RegisteredDevice
from kouan.signing import Verifier

logger = logging.getLogger(__name__)


class DatabaseRegistry:
    """Look devices up in memory, reloading from the database on a miss and when stale.

    A device provisioned while the collector runs is accepted within ``refresh_s``
    seconds, and a flood of unknown device ids costs one query per ``refresh_s``, not
    one per message. A device revoked or re-keyed is rejected within ``max_age_s``,
    because the whole registry is reloaded that often even without a miss.
    """

    def __init__(self, database_url: str, refresh_s: float, max_age_s: float = 30.0) -> None:
        self._database_url = database_url
        self._refresh_s = refresh_s
        self._max_age_s = max_age_s
        self._devices: dict[str, RegisteredDevice] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def lookup(self, device_id: str) -> RegisteredDevice | None:
        age_s = time.monotonic() - self._loaded_at
        device = self._devices.get(device_id)
        if device is not None and age_s < self._max_age_s:
            return device

        with self._lock:
            if time.monotonic() - self._loaded_at >= self._refresh_s:
                self.reload()
        return self._devices.get(device_id)

    def reload(self) -> None:
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT device_id, site_id, lane_id, public_key, enabled FROM devices"
            ).fetchall()

        devices = {}
        for device_id, site_id, lane_id, public_key, enabled in rows:
            verifier = Verifier(bytes(public_key)) if public_key else None
            devices[device_id] = RegisteredDevice(device_id, site_id, lane_id, verifier, enabled)
        self._devices = devices
        self._loaded_at = time.monotonic()
        logger.debug("Device registry reloaded: %d devices", len(devices))
