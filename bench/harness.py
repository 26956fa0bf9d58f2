"""A private Kouan stack for one benchmark run, its processes and their CPU and memory.

Like the test suite's stack, it lives under a temporary KOUAN_HOME on free ports,
so a benchmark never touches a running demo or another engineer's tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from kouan.db.migrate import migrate
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.stack.manager import Stack, down, reload_broker, up, write_broker_auth

SAMPLE_INTERVAL_S = 0.5
READY_TIMEOUT_S = 60.0


class BenchError(RuntimeError):
    """A benchmark step could not run (a process did not start, a phase timed out)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchStack:
    """The stack, the environment its subprocesses need and the processes started on it."""

    stack: Stack
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    keep: bool = False

    @classmethod
    def start(cls, keep: bool = False) -> BenchStack:
        home = Path(tempfile.mkdtemp(prefix="kouan-bench-"))
        stack = Stack(home, mqtt_port=free_port(), pg_port=free_port())
        up(stack)
        migrate(stack.database_url)
        env = {
            **os.environ,
            "KOUAN_HOME": str(home),
            "KOUAN_MQTT_PORT": str(stack.mqtt_port),
            "KOUAN_STACK_PG_PORT": str(stack.pg_port),
            "KOUAN_DATABASE_URL": stack.database_url,
            "KOUAN_LOG_LEVEL": "INFO",
        }
        return cls(stack, env, keep=keep)

    @property
    def home(self) -> Path:
        return self.stack.home

    def service_credentials(self) -> tuple[str, str]:
        username, password = self.stack.service_secret.read_text().strip().split(":", 1)
        return username, password

    def provision_devices(self, site_id: str, count: int, direction: str = "in") -> list[DeviceIdentity]:
        """Provision ``count`` lane devices at ``site_id``, one lane each, then reload the broker."""
        with psycopg.connect(self.stack.database_url, autocommit=True) as conn:
            ensure_site(conn, site_id, f"基准测试 {site_id}", "CNSHA", "2248")
            for index in range(count):
                ensure_lane(conn, site_id, f"L{index:03d}", direction)
        identities = [
            provision(
                self.home, self.stack.database_url, f"{site_id}-{index}", site_id, f"L{index:03d}", "lane"
            )
            for index in range(count)
        ]
        write_broker_auth(self.stack)
        reload_broker(self.stack)
        time.sleep(0.5)  # Mosquitto rereads its password file asynchronously after SIGHUP.
        return identities

    def spawn(
        self,
        name: str,
        argv: list[str],
        ready_text: bytes | None = None,
        ready_count: int = 1,
        **env: str,
    ) -> None:
        """Start a process in its own session with its output in the stack's log directory.

        With ``ready_text``, wait until the log contains it ``ready_count`` times.
        """
        log_path = self.home / "log" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            argv,
            env={**self.env, **env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        if ready_text is not None:
            self._wait_for_log(name, log_path, ready_text, ready_count)

    def spawn_kouan(
        self, name: str, *args: str, ready_text: bytes | None = None, ready_count: int = 1, **env: str
    ) -> None:
        self.spawn(name, [sys.executable, "-m", "kouan", *args], ready_text, ready_count, **env)

    def _wait_for_log(self, name: str, log_path: Path, text: bytes, count: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while log_path.read_bytes().count(text) < count:
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_bytes()[-2000:].decode(errors="replace")
                raise BenchError(f"{name} did not log {text!r} within {READY_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.05)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def kill(self, name: str) -> None:
        """Kill a process at once (SIGKILL), leaving its unacknowledged messages at the broker."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        down(self.stack)
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    # --- process groups for accounting -------------------------------------------

    def mosquitto_pids(self) -> list[int]:
        try:
            return [int(self.stack.mosquitto_pid_file.read_text().strip())]
        except (FileNotFoundError, ValueError):
            return []

    def postgres_pids(self) -> list[int]:
        try:
            postmaster = int((self.stack.pg_data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return []
        try:
            children = psutil.Process(postmaster).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [postmaster, *(child.pid for child in children)]

    def process_pids(self, name: str) -> list[int]:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return []
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return [process.pid]
        return [process.pid, *(child.pid for child in children)]


@dataclass
class Usage:
    """CPU time and peak memory of one group of processes during one phase."""

    cpu_s: float = 0.0
    peak_memory_bytes: int = 0
    wall_s: float = 0.0

    @property
    def cpu_percent(self) -> float:
        """Percent of one core, averaged over the phase."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else 0.0


class ResourceSampler:
    """Sample CPU time and memory of named process groups every ``SAMPLE_INTERVAL_S``.

    Memory is the proportional set size (PSS), so PostgreSQL's shared buffers count
    once across its backends instead of once per backend as RSS would.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.usage: dict[str, dict[str, Usage]] = defaultdict(lambda: defaultdict(Usage))
        self._phase: str | None = None
        self._phase_started = 0.0
        self._last_cpu: dict[int, float] = {}
        self._processes: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def begin(self, phase: str) -> None:
        with self._lock:
            self._sample()
            self._phase = phase
            self._phase_started = time.monotonic()

    def end(self) -> dict[str, Usage]:
        with self._lock:
            self._sample()
            phase, self._phase = self._phase, None
            if phase is None:
                return {}
            wall_s = time.monotonic() - self._phase_started
            for usage in self.usage[phase].values():
                usage.wall_s = wall_s
            return dict(self.usage[phase])

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            with self._lock:
                self._sample()

    def _sample(self) -> None:
        for group, pids_of in self.groups.items():
            cpu_delta, memory = 0.0, 0
            for pid in pids_of():
                cpu, pss = self._read(pid)
                cpu_delta += max(0.0, cpu - self._last_cpu.get(pid, cpu))
                self._last_cpu[pid] = cpu
                memory += pss
            if self._phase is not None:
                usage = self.usage[self._phase][group]
                usage.cpu_s += cpu_delta
                usage.peak_memory_bytes = max(usage.peak_memory_bytes, memory)

    def _read(self, pid: int) -> tuple[float, int]:
        process = self._processes.get(pid)
        try:
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
            times = process.cpu_times()
            memory = process.memory_full_info()
            return times.user + times.system, int(getattr(memory, "pss", memory.rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return self._last_cpu.get(pid, 0.0), 0
