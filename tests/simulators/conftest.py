"""Fixtures for the simulator tests: a real API process beside the real collector."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ProcessGroup, free_port, wait_for

# The fault drill writes about 80 declarations and the grade reads every container
# within a minute, more than the API's default per-caller limit allows.
API_ENV = {"KOUAN_RATE_LIMIT_PER_MINUTE": "100000", "KOUAN_FEED_SETTLE_S": "0.5"}


@pytest.fixture
def api_url(processes: ProcessGroup) -> str:
    """A real ``kouan api`` process on a free loopback port; returns its base URL."""
    port = free_port()
    process = processes.start("api", "--port", str(port), env=API_ENV, log="api")
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        """API returns 200 on /healthz"""
        assert process.poll() is None, process.log_path.read_text()  # type: ignore[attr-defined]
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=30, interval=0.2)
    return base_url
