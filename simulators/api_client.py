"""The simulator's HTTP side: its API key and requests that wait out rate limits.

The API key comes from ``KOUAN_API_KEY``, or is one the simulator creates for its own site.

The simulator provisions its site and devices in the database itself, so when no key
is given it also creates an ``admin`` key limited to that site (writing declarations
needs the integrator's rights, grading needs the alerts and decisions an officer
reads). The key is kept under ``$KOUAN_HOME/secrets`` with mode 0600 for the grade.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from kouan.settings import CommonSettings

logger = logging.getLogger(__name__)

SIMULATOR_ROLE = "admin"
# A 429 is retried after the server's Retry-After, at most this often and this long.
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_S = 60.0


def send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send a request, waiting and retrying while the API answers 429 Too Many Requests."""
    response = client.request(method, path, **kwargs)
    for _ in range(RATE_LIMIT_RETRIES):
        if response.status_code != 429:
            return response
        wait_s = min(float(response.headers.get("Retry-After", "1")), MAX_RETRY_AFTER_S)
        logger.warning("%s %s rate limited; retrying in %.0f s", method, path, wait_s)
        time.sleep(wait_s)
        response = client.request(method, path, **kwargs)
    return response


def key_file(settings: CommonSettings, site_id: str) -> Path:
    return settings.home / "secrets" / f"simulator-{site_id}.apikey"


def stored_api_key(settings: CommonSettings, site_id: str) -> str | None:
    """Return ``KOUAN_API_KEY`` when set, else the key kept for this site, else None."""
    if os.environ.get("KOUAN_API_KEY"):
        return os.environ["KOUAN_API_KEY"]
    path = key_file(settings, site_id)
    return path.read_text().strip() if path.exists() else None


def ensure_api_key(settings: CommonSettings, site_id: str) -> str | None:
    """Return an API key for the site, creating one when none is given or kept.

    Returns None when this installation has no API keys (no ``api.security``).
    """
    existing = stored_api_key(settings, site_id)
    if existing:
        return existing
    try:
        from api.security.accounts import create_api_key, revoke_api_key
    except ImportError:
        return None

    name = f"simulator-{site_id}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        revoke_api_key(conn, name, actor="simulator")  # a key whose file was lost
        key = create_api_key(conn, name, SIMULATOR_ROLE, [site_id], actor="simulator")
    path = key_file(settings, site_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    logger.info("Created API key %s (role %s, site %s), kept in %s", name, SIMULATOR_ROLE, site_id, path)
    return key
