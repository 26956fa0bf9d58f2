"""``kouan demo``: the embedded stack, a collector, the API and a simulated port day."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import psycopg
from rich.console import Console

from kouan.db.migrate import migrate
from kouan.settings import STACK_API_PORT, CommonSettings
from kouan.stack.manager import Stack, status, up

logger = logging.getLogger(__name__)
console = Console()


def _spawn(  # noqa: ANN001
    args: list[str], log_name: str, home, env: dict[str, str] | None = None
) -> subprocess.Popen:
    log_dir = home / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    handle = open(log_dir / log_name, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "kouan", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


# The site of the peak_morning scenario that the demo simulates.
DEMO_SITES = (("CNSHA-YS", "洋山港区", "CNSHA", "2248"),)
DEMO_KEY_NAME = "demo-simulator"
DEMO_USERNAME = "demo"


def _demo_accounts(database_url: str) -> tuple[str, str]:
    """Create the simulator's integrator key and the demo officer login; return (key, password).

    Both are made anew on every demo start, so a key or password printed by an
    earlier run stops working.
    """
    from api.security.accounts import add_user, create_api_key, revoke_api_key
    from kouan.devices import ensure_site

    site_ids = [site[0] for site in DEMO_SITES]
    password = secrets.token_urlsafe(12)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for site_id, name, locode, district in DEMO_SITES:
            ensure_site(conn, site_id, name, locode, district)
        revoke_api_key(conn, DEMO_KEY_NAME, actor="demo")
        key = create_api_key(conn, DEMO_KEY_NAME, "integrator", site_ids, actor="demo")
        add_user(
            conn, DEMO_USERNAME, password, "customs_officer", site_ids, actor="demo", display_name="演示关员"
        )
    return key, password


def _wait_for_api(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"API at {url} did not answer /healthz within {timeout_s:.0f} s")


def _visit_count(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        visits = conn.execute("SELECT count(*) FROM container_visits").fetchone()
        events = conn.execute("SELECT count(*) FROM event_keys").fetchone()
    return int(visits[0]), int(events[0])


def run_demo(trucks: int) -> int:
    settings = CommonSettings()
    stack = Stack(settings.home, settings.mqtt_port, settings.stack_pg_port)
    stack_was_running = all(service.running for service in status(stack))
    api_url = f"http://127.0.0.1:{STACK_API_PORT}"

    console.print("[bold]Kouan demo[/bold]: starting the embedded stack ...")
    up(stack)
    migrate(stack.database_url)
    api_key, password = _demo_accounts(stack.database_url)
    children: list[subprocess.Popen] = []
    interrupted = False

    def stop(*_: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        children.append(_spawn(["collector"], "collector.log", settings.home))
        children.append(_spawn(["api", "--port", str(STACK_API_PORT)], "api.log", settings.home))
        _wait_for_api(api_url)
        children.append(
            _spawn(
                [
                    "simulate",
                    "run",
                    "peak_morning",
                    "--trucks",
                    str(trucks),
                    "--api-url",
                    api_url,
                    "--truth",
                    str(settings.home / "demo.truth.json"),
                ],
                "simulator.log",
                settings.home,
                env={"KOUAN_API_KEY": api_key},
            )
        )
        console.print(
            f"\n  API:        {api_url}/api/v1  (OpenAPI: {api_url}/docs)\n"
            f"  Health:     {api_url}/healthz\n"
            f"  Dashboard:  {api_url}/dashboard/  login: {DEMO_USERNAME} / {password} (customs officer)\n"
            f"  Logs:       {settings.home / 'log'}\n"
            f"  Try:        curl -s -H 'X-API-Key: {api_key}' {api_url}/api/v1/declarations\n"
            "  Stop:       Ctrl-C stops everything this demo started\n"
        )
        started = time.monotonic()
        while not interrupted:
            time.sleep(1)
            if int(time.monotonic() - started) % 10 == 0:
                visits, events = _visit_count(stack.database_url)
                elapsed = time.monotonic() - started
                console.print(f"  {elapsed:5.0f} s: {visits} container visits, {events} events stored")
            for child in children[:2]:
                if child.poll() is not None:
                    console.print(
                        f"[red]A demo process exited with code {child.returncode}; see the logs[/red]"
                    )
                    interrupted = True
    finally:
        console.print("Stopping demo processes ...")
        for child in reversed(children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        if not stack_was_running:
            from kouan.stack.manager import down

            down(stack)
            console.print("Embedded stack stopped.")
    return 0
