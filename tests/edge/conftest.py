"""Helpers for the edge tests: a running ``kouan edge`` process and its camera endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from kouan.identifiers import iso6346_check_digit
from tests.conftest import ProcessGroup, free_port, wait_for


def post_frame(port: int, frame: dict[str, Any], timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """POST one frame to a camera endpoint; return the HTTP status and the JSON body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/frames",
        data=json.dumps(frame).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def endpoint_status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def container_number(number: int) -> str:
    """Return a valid ISO 6346 number per test event, so events name distinct containers."""
    first10 = f"KOUU{number % 1_000_000:06d}"
    return first10 + iso6346_check_digit(first10)


def scan_frame(number: int) -> dict[str, Any]:
    """A scanner result frame; each one becomes one scan.result event."""
    return {
        "type": "scan",
        "container_number": container_number(number),
        "result": "clear",
        "camera_id": f"cam{number % 4}",
    }


class EdgeProcess:
    """One ``kouan edge DEVICE`` subprocess with its camera endpoint."""

    def __init__(self, processes: ProcessGroup, device_id: str, port: int, env: dict[str, str]) -> None:
        self.device_id = device_id
        self.port = port
        self.process = processes.start(
            "edge", device_id, env={"KOUAN_HTTP_PORT": str(port), **env}, log=f"edge-{device_id}"
        )

    def wait_online(self, timeout: float = 30) -> dict[str, Any]:
        def online() -> dict[str, Any] | None:
            """edge endpoint responds and the agent is connected"""
            status = endpoint_status(self.port)
            return status if status and status["state"] == "online" else None

        return wait_for(online, timeout=timeout)

    def wait_endpoint(self, timeout: float = 30) -> dict[str, Any]:
        return wait_for(lambda: endpoint_status(self.port), timeout=timeout)

    def status(self) -> dict[str, Any] | None:
        return endpoint_status(self.port)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly as a power cut or OOM kill."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


@pytest.fixture
def start_edge(processes: ProcessGroup):
    def start(device_id: str, port: int | None = None, **settings: Any) -> EdgeProcess:
        env = {f"KOUAN_{key.upper()}": str(value) for key, value in settings.items()}
        return EdgeProcess(processes, device_id, port or free_port(), env)

    return start


def kill_process(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
