"""Many concurrent requests against a small connection pool: every one gets a response.

Sync routes and their dependencies run in the server's worker threads. Were a
thread to wait in the pool for a connection, enough waiting requests would occupy
every thread while the requests holding the connections wait for a thread, and all
of them would hang until the pool gave up.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings

CONCURRENT_REQUESTS = 120


def test_more_requests_than_worker_threads_and_connections(world, make_key):
    headers = make_key("supervisor", world.a.site_id)
    settings = ApiSettings(pool_min_size=1, pool_max_size=2, rate_limit_per_minute=100_000)
    with TestClient(create_app(settings)) as small, ThreadPoolExecutor(CONCURRENT_REQUESTS) as callers:
        url = f"/api/v1/containers/{world.a.container_number}"
        responses = list(callers.map(lambda _: small.get(url, headers=headers), range(CONCURRENT_REQUESTS)))

    assert [response.status_code for response in responses] == [200] * CONCURRENT_REQUESTS
    assert {response.json()["container_number"] for response in responses} == {world.a.container_number}
