"""Headless Chromium (Debian's package) driven by Playwright against a real API server.

Playwright launches /usr/bin/chromium through ``executable_path``, so no browser is
downloaded. Every test gets a new, empty profile directory. Requests that leave the
API server's origin are aborted and recorded, so a test can assert the page needs
nothing from the internet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProcessGroup, free_port, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
PASSWORD = "kouan-browser-test-1"


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; run scripts/setup.sh (installs Debian's chromium and fonts-noto-cjk)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def api_server(processes: ProcessGroup) -> str:
    """A real ``kouan api`` process on a free loopback port; returns its base URL."""
    port = free_port()
    process = processes.start("api", "--host", "127.0.0.1", "--port", str(port), log="api")
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


def add_user(username: str, role: str, site_id: str, password: str = PASSWORD) -> None:
    """Create a dashboard user with the real CLI, as an operator would."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kouan",
            "user",
            "add",
            username,
            "--role",
            role,
            "--site",
            site_id,
            "--password",
            password,
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class Browser:
    """One Chromium profile with a page on the API server's origin."""

    base_url: str
    context: object
    page: object
    foreign_requests: list[str] = field(default_factory=list)

    def open_dashboard(self, fragment: str = "") -> None:
        self.page.goto(f"{self.base_url}/dashboard/{fragment}")  # type: ignore[attr-defined]

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        page = self.page
        page.get_by_test_id("login-username").fill(username)  # type: ignore[attr-defined]
        page.get_by_test_id("login-password").fill(password)  # type: ignore[attr-defined]
        page.get_by_test_id("login-submit").click()  # type: ignore[attr-defined]
        page.get_by_test_id("user-name").filter(has_text=username).wait_for()  # type: ignore[attr-defined]


@pytest.fixture
def browser(playwright_driver: object, api_server: str, tmp_path: Path) -> Iterator[Browser]:
    context = playwright_driver.chromium.launch_persistent_context(  # type: ignore[attr-defined]
        str(tmp_path / "chromium-profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport=VIEWPORT,
    )
    context.set_default_timeout(15_000)
    instance = Browser(api_server, context, context.pages[0] if context.pages else context.new_page())

    def only_own_origin(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if (
            url.startswith(api_server + "/")
            or url == api_server
            or url.startswith("data:")
            or url.startswith("blob:")
        ):
            route.continue_()  # type: ignore[attr-defined]
        else:
            instance.foreign_requests.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", only_own_origin)
    yield instance
    context.close()


def create_api_key(name: str, role: str, site_id: str) -> str:
    """Create an API key with the real CLI and return the key it prints once."""
    result = subprocess.run(
        [sys.executable, "-m", "kouan", "apikey", "create", name, "--role", role, "--site", site_id],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1].strip()
