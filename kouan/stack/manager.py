"""Start, stop and inspect the embedded Mosquitto and PostgreSQL of ``kouan stack``."""

from __future__ import annotations

import getpass
import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from kouan.settings import STACK_MQTT_PORT, STACK_PG_PORT

logger = logging.getLogger(__name__)

SERVICE_USER = "kouan-service"
DATABASE_NAME = "kouan"
DATABASE_ROLE = "kouan"
# PostgreSQL refuses to run as root; a root caller runs the cluster as this user.
POSTGRES_OS_USER = "postgres"


class StackError(RuntimeError):
    """The embedded stack could not be started, stopped or inspected."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    detail: str


@dataclass(frozen=True)
class Stack:
    """Paths and ports of one embedded stack under ``home``."""

    home: Path
    mqtt_port: int = STACK_MQTT_PORT
    pg_port: int = STACK_PG_PORT

    @property
    def pg_data(self) -> Path:
        return self.home / "pg" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.home / "run" / "pg"

    @property
    def mosquitto_dir(self) -> Path:
        return self.home / "mosquitto"

    @property
    def mosquitto_conf(self) -> Path:
        return self.mosquitto_dir / "mosquitto.conf"

    @property
    def mosquitto_pid_file(self) -> Path:
        return self.home / "run" / "mosquitto.pid"

    @property
    def service_secret(self) -> Path:
        return self.home / "secrets" / "mqtt-service.txt"

    @property
    def database_url(self) -> str:
        return f"postgresql://{DATABASE_ROLE}@127.0.0.1:{self.pg_port}/{DATABASE_NAME}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{DATABASE_ROLE}@127.0.0.1:{self.pg_port}/{dbname}"


# --- locating binaries -------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """Return the bin directory of the newest PostgreSQL server installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major_of)
    if candidates:
        return Path(candidates[-1]).parent

    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise StackError(
        "PostgreSQL server binaries not found. Run `make setup` (Debian) or install "
        "PostgreSQL 15+ with TimescaleDB and put pg_ctl on PATH."
    )


def _major_of(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except (ValueError, IndexError):
        return 0


def mosquitto_binary() -> str:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and Path(candidate).exists():
            return candidate
    raise StackError("Mosquitto not found. Run `make setup` (Debian) or install mosquitto 2.x.")


def mosquitto_passwd_binary() -> str:
    found = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(found).exists():
        raise StackError("mosquitto_passwd not found. Install the mosquitto package.")
    return found


# --- running as the cluster owner ---------------------------------------------------


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _pg_command(argv: list[str]) -> list[str]:
    if _running_as_root():
        return ["runuser", "-u", POSTGRES_OS_USER, "--", *argv]
    return argv


def _chown_to_pg(path: Path) -> None:
    if not _running_as_root():
        return

    entry = pwd.getpwnam(POSTGRES_OS_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


# --- PostgreSQL ----------------------------------------------------------------------


def _render(template: str, **values: object) -> str:
    text = resources.files("kouan.stack").joinpath(template).read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _init_postgres(stack: Stack) -> None:
    bin_dir = postgres_bin_dir()
    stack.pg_data.mkdir(parents=True, exist_ok=True)
    stack.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(stack.home, 0o755)
    _chown_to_pg(stack.home / "pg")
    _chown_to_pg(stack.pg_socket_dir)

    logger.info("Initialising PostgreSQL cluster in %s", stack.pg_data)
    _run(
        _pg_command(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(stack.pg_data),
                "-U",
                DATABASE_ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        "initdb",
    )
    conf = stack.pg_data / "postgresql.conf"
    extra = _render("postgresql.conf", socket_dir=stack.pg_socket_dir, port=stack.pg_port)
    with conf.open("a") as handle:
        handle.write("\n# --- Kouan ---\n" + extra)


def _postgres_running(stack: Stack) -> bool:
    if not (stack.pg_data / "PG_VERSION").exists():
        return False
    result = subprocess.run(
        _pg_command([str(postgres_bin_dir() / "pg_ctl"), "status", "-D", str(stack.pg_data)]),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def _start_postgres(stack: Stack) -> None:
    if not (stack.pg_data / "PG_VERSION").exists():
        _init_postgres(stack)
    if _postgres_running(stack):
        return

    stack.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    _chown_to_pg(stack.pg_socket_dir)
    log_file = stack.home / "pg" / "postgresql.log"
    logger.info("Starting PostgreSQL on 127.0.0.1:%d", stack.pg_port)
    _run(
        _pg_command(
            [
                str(postgres_bin_dir() / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(stack.pg_data),
                "-l",
                str(log_file),
            ]
        ),
        "pg_ctl start",
    )
    _ensure_database(stack)


def _ensure_database(stack: Stack) -> None:
    with psycopg.connect(stack.admin_url(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            logger.info("Created database %s", DATABASE_NAME)


def _stop_postgres(stack: Stack) -> None:
    if not _postgres_running(stack):
        return
    _run(
        _pg_command(
            [
                str(postgres_bin_dir() / "pg_ctl"),
                "stop",
                "-w",
                "-m",
                "fast",
                "-D",
                str(stack.pg_data),
            ]
        ),
        "pg_ctl stop",
    )


# --- Mosquitto -----------------------------------------------------------------------


def _ensure_mosquitto_files(stack: Stack) -> None:
    for sub in ("data", ""):
        (stack.mosquitto_dir / sub).mkdir(parents=True, exist_ok=True)
    (stack.home / "log").mkdir(parents=True, exist_ok=True)
    (stack.home / "run").mkdir(parents=True, exist_ok=True)

    if not stack.service_secret.exists():
        stack.service_secret.parent.mkdir(parents=True, exist_ok=True)
        stack.service_secret.write_text(f"{SERVICE_USER}:{secrets.token_urlsafe(24)}\n")
        os.chmod(stack.service_secret, 0o600)
    write_broker_auth(stack)

    stack.mosquitto_conf.write_text(
        _render("mosquitto.conf", home=stack.home, port=stack.mqtt_port, user=getpass.getuser())
    )


def write_broker_auth(stack: Stack) -> None:
    """Regenerate the broker's password and ACL files from the stack's secrets.

    The service user may use every Kouan topic; each device (one file per device
    under ``secrets/devices``) may publish only its own events and status and read
    only its own receipts and commands.
    """
    passwd = stack.mosquitto_dir / "passwd"
    acl_lines = [f"user {SERVICE_USER}", "topic readwrite kouan/#", "topic read $SYS/#", ""]
    credentials = [stack.service_secret.read_text().strip()]

    for device_file in sorted((stack.home / "secrets" / "devices").glob("*.broker")):
        username, password, site_id = device_file.read_text().strip().split(":", 2)
        credentials.append(f"{username}:{password}")
        base = f"kouan/v1/{site_id}/{username}"
        acl_lines += [
            f"user {username}",
            f"topic write {base}/events",
            f"topic readwrite {base}/status",
            f"topic read {base}/receipts",
            f"topic read {base}/commands",
            "",
        ]

    passwd.write_text("\n".join(credentials) + "\n")
    os.chmod(passwd, 0o600)
    _run([mosquitto_passwd_binary(), "-U", str(passwd)], "mosquitto_passwd")
    (stack.mosquitto_dir / "acl").write_text("\n".join(acl_lines))


def reload_broker(stack: Stack) -> None:
    """Make a running broker reread its password and ACL files (SIGHUP)."""
    pid = _mosquitto_pid(stack)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)


def _mosquitto_pid(stack: Stack) -> int | None:
    try:
        pid = int(stack.mosquitto_pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _start_mosquitto(stack: Stack) -> None:
    _ensure_mosquitto_files(stack)
    if _mosquitto_pid(stack) is not None:
        reload_broker(stack)
        return

    logger.info("Starting Mosquitto on 127.0.0.1:%d", stack.mqtt_port)
    _run([mosquitto_binary(), "-d", "-c", str(stack.mosquitto_conf)], "mosquitto")
    _wait_for_port(stack.mqtt_port, "Mosquitto", stack.home / "log" / "mosquitto.log")


def _stop_mosquitto(stack: Stack) -> None:
    pid = _mosquitto_pid(stack)
    if pid is None:
        return

    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _mosquitto_pid(stack) is not None:
        time.sleep(0.05)


def _wait_for_port(port: int, name: str, log_file: Path, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise StackError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log_file}")


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise StackError(f"{what} failed with exit code {result.returncode}: {output}")


# --- public operations ---------------------------------------------------------------


def up(stack: Stack) -> None:
    """Start both services; starting a running service does nothing."""
    stack.home.mkdir(parents=True, exist_ok=True)
    _start_postgres(stack)
    _start_mosquitto(stack)


def down(stack: Stack) -> None:
    """Stop both services; data stays under ``home`` for the next ``up``."""
    _stop_mosquitto(stack)
    _stop_postgres(stack)


def status(stack: Stack) -> list[ServiceStatus]:
    pg_running = _postgres_running(stack)
    mqtt_pid = _mosquitto_pid(stack)
    return [
        ServiceStatus(
            "postgresql",
            pg_running,
            f"127.0.0.1:{stack.pg_port}",
            str(stack.pg_data) if pg_running else "stopped",
        ),
        ServiceStatus(
            "mosquitto",
            mqtt_pid is not None,
            f"127.0.0.1:{stack.mqtt_port}",
            f"pid {mqtt_pid}" if mqtt_pid else "stopped",
        ),
    ]
