"""Property-based requests from the published OpenAPI schema against a real API process.

schemathesis generates requests for every operation (the live stream, which never
ends by itself, and the password login, which costs an argon2 hash per call, are
left out) and checks that none returns 5xx and every response matches the schema:
status code documented, content type and body as declared.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

# Examples per operation: about 30 operations, so a few hundred requests in all,
# which keeps this test well under two minutes on a two-core machine.
EXAMPLES_PER_OPERATION = 12
EXCLUDED_PATHS = ("/api/v1/stream", "/api/v1/auth/token")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(stack, world) -> Iterator[str]:
    port = _free_port()
    log_path = stack.home / "log" / f"api-fuzz-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "kouan", "api", "--port", str(port)],
        env={**os.environ, "KOUAN_RATE_LIMIT_PER_MINUTE": "1000000"},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"API did not start; see {log_path}")
    yield url
    process.terminate()
    process.wait(timeout=20)
    assert b"Traceback" not in log_path.read_bytes(), f"the API logged a traceback; see {log_path}"


@pytest.fixture(scope="module")
def api_schema(api_server):
    schema = schemathesis.openapi.from_url(f"{api_server}/openapi.json")
    return schema.exclude(path=list(EXCLUDED_PATHS))


@pytest.fixture(scope="module")
def fuzz_headers(world, make_key):
    """An admin key for both world sites, so generated requests can reach stored objects."""
    return make_key("admin", world.a.site_id, world.b.site_id)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _fuzz(operation, headers: dict[str, str], statuses: Counter[int]) -> str | None:
    """Run the generated cases of one operation; return the first failure's text, if any."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # noqa: ANN001
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses[response.status_code] += 1

    try:
        run()
    except Exception as exc:  # noqa: BLE001 - every failure kind is reported per operation
        return f"{operation.label}: {exc}"[:3000]
    return None


def test_api_conforms_to_openapi(api_schema, fuzz_headers):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25

    statuses: Counter[int] = Counter()
    failures = [failure for operation in operations if (failure := _fuzz(operation, fuzz_headers, statuses))]

    print(f"schemathesis: {len(operations)} operations, responses by status {dict(sorted(statuses.items()))}")
    assert failures == []
    assert sum(statuses.values()) >= len(operations) * 3
    assert statuses[200] > 0
