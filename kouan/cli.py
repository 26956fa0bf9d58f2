"""The ``kouan`` command: one subcommand per process and per operator task."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kouan.formats.commands import import_app
from kouan.settings import CommonSettings
from simulators.cli import simulate_app

app = typer.Typer(help="Kouan (口岸): port-of-entry supervision.", no_args_is_help=True)
stack_app = typer.Typer(help="The embedded Mosquitto and PostgreSQL/TimescaleDB.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
device_app = typer.Typer(help="Device provisioning.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(device_app, name="device")
app.add_typer(simulate_app, name="simulate")
audit_app = typer.Typer(help="The hash-chained audit log of human actions.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
user_app = typer.Typer(help="API users (people who log in).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for integrators' systems.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(import_app, name="import")

console = Console(stderr=True)


def configure_logging() -> None:
    level = os.environ.get("KOUAN_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _stack():  # noqa: ANN202
    from kouan.stack.manager import Stack

    settings = CommonSettings()
    return Stack(settings.home, settings.mqtt_port, settings.stack_pg_port)


@stack_app.command("up")
def stack_up() -> None:
    """Start the private broker and database (initialising them on first use) and migrate."""
    from kouan.db.migrate import migrate
    from kouan.stack.manager import StackError, up

    configure_logging()
    stack = _stack()
    try:
        up(stack)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    applied = migrate(stack.database_url)
    console.print(
        f"Stack up: PostgreSQL 127.0.0.1:{stack.pg_port}, Mosquitto 127.0.0.1:{stack.mqtt_port}, "
        f"data in {stack.home}; {len(applied)} migrations applied"
    )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the private broker and database; their data stays for the next `up`."""
    from kouan.stack.manager import down

    configure_logging()
    down(_stack())
    console.print("Stack stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether the private broker and database are running."""
    from kouan.stack.manager import status

    table = Table("service", "running", "address", "detail")
    rows = status(_stack())
    for row in rows:
        table.add_row(row.name, "yes" if row.running else "no", row.address, row.detail)
    Console().print(table)
    if not all(row.running for row in rows):
        raise typer.Exit(3)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations to KOUAN_DATABASE_URL."""
    from kouan.db.migrate import migrate

    configure_logging()
    applied = migrate(CommonSettings().database_url)
    console.print(f"{len(applied)} migrations applied" + (f": {', '.join(applied)}" if applied else ""))


@device_app.command("add")
def device_add(
    device_id: Annotated[str, typer.Argument(help="Device id, e.g. CNSHA-YS-IN01")],
    site: Annotated[str, typer.Option(help="Site id the device belongs to")],
    lane: Annotated[str | None, typer.Option(help="Lane id, for lane and scanner devices")] = None,
    kind: Annotated[str, typer.Option(help="lane, scanner, eseal_reader or tos_feed")] = "lane",
) -> None:
    """Provision a device: Ed25519 key pair, broker user and ACL, registry entry."""
    from kouan.devices import provision
    from kouan.stack.manager import Stack, reload_broker, write_broker_auth

    configure_logging()
    settings = CommonSettings()
    identity = provision(settings.home, settings.database_url, device_id, site, lane, kind)
    stack = Stack(settings.home, settings.mqtt_port, settings.stack_pg_port)
    if stack.service_secret.exists():
        write_broker_auth(stack)
        reload_broker(stack)
    console.print(
        f"Device {identity.device_id} provisioned at site {identity.site_id}; "
        f"key and broker credentials in {settings.home / 'devices' / device_id}"
    )


@device_app.command("list")
def device_list(site: Annotated[str | None, typer.Option(help="Only devices of this site")] = None) -> None:
    """Show registered devices with their last seq, gap-free seq, clock offset and outbox depth."""
    from kouan.devices import device_rows

    table = Table(
        "device",
        "site",
        "lane",
        "kind",
        "enabled",
        "state",
        "last seq",
        "gap-free to",
        "clock offset ms",
        "outbox",
    )
    for row in device_rows(CommonSettings().database_url, site):
        offset = row["clock_offset_ms"]
        table.add_row(
            str(row["device_id"]),
            str(row["site_id"]),
            str(row["lane_id"] or ""),
            str(row["kind"]),
            "yes" if row["enabled"] else "no",
            str(row["state"] or "-"),
            str(row["last_seq"]),
            str(row["contiguous_seq"]),
            "-" if offset is None else f"{offset:.0f}",
            "-" if row["outbox_depth"] is None else str(row["outbox_depth"]),
        )
    Console().print(table)


@device_app.command("revoke")
def device_revoke(device_id: Annotated[str, typer.Argument(help="Device id to revoke")]) -> None:
    """Disable a device: the collector quarantines its events and the broker refuses its login."""
    from kouan.devices import revoke
    from kouan.stack.manager import Stack, reload_broker, write_broker_auth

    configure_logging()
    settings = CommonSettings()
    if not revoke(settings.home, settings.database_url, device_id):
        console.print(f"[red]No device {device_id} in the registry or the broker's users[/red]")
        raise typer.Exit(2)
    stack = Stack(settings.home, settings.mqtt_port, settings.stack_pg_port)
    if stack.service_secret.exists():
        write_broker_auth(stack)
        reload_broker(stack)
    console.print(f"Device {device_id} revoked: disabled in the registry, broker login removed")


def _operator() -> str:
    """The audit log actor for accounts managed from the command line."""
    import getpass

    return f"cli:{getpass.getuser()}"


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help="customs_officer, supervisor, integrator, auditor or admin")],
    site: Annotated[list[str], typer.Option(help="Site the user may see; repeat for several")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters"),
    ],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
) -> None:
    """Create a user, or replace an existing user's password, role and sites."""
    import psycopg

    from api.security.accounts import AccountError, add_user

    configure_logging()
    with psycopg.connect(CommonSettings().database_url, autocommit=True) as conn:
        try:
            add_user(conn, username, password, role, site, actor=_operator(), display_name=name)
        except AccountError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    console.print(f"User {username} ({role}) may log in for site {', '.join(site)}")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Name of the system using the key, e.g. tos-adapter")],
    role: Annotated[str, typer.Option(help="Usually integrator")],
    site: Annotated[list[str], typer.Option(help="Site the key may see; repeat for several")],
) -> None:
    """Create an API key and print it once on stdout; only its hash is stored."""
    import psycopg

    from api.security.accounts import AccountError, create_api_key

    configure_logging()
    with psycopg.connect(CommonSettings().database_url, autocommit=True) as conn:
        try:
            key = create_api_key(conn, name, role, site, actor=_operator())
        except AccountError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    console.print(f"API key {name} ({role}) for site {', '.join(site)}; it is shown only now:")
    print(key)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="Name given at creation")]) -> None:
    """Revoke an API key at once; requests with it get 401."""
    import psycopg

    from api.security.accounts import revoke_api_key

    configure_logging()
    with psycopg.connect(CommonSettings().database_url, autocommit=True) as conn:
        revoked = revoke_api_key(conn, name, actor=_operator())
    if not revoked:
        console.print(f"[red]No active API key named {name}[/red]")
        raise typer.Exit(2)
    console.print(f"API key {name} revoked")


@app.command()
def collector(
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Collector processes to run side by side, one per core; each uses the MQTT "
            "client id KOUAN_CLIENT_ID-n (n = 1, 2, ...) when there is more than one",
        ),
    ] = 1,
) -> None:
    """Run a collector: consume events, store, correlate, send receipts."""
    from collector.settings import CollectorSettings

    configure_logging()
    settings = CollectorSettings()
    if processes > 1:
        from collector.supervisor import run_processes

        raise typer.Exit(run_processes(processes, settings.client_id))

    from collector.service import run

    run(settings)


@app.command()
def edge(
    device_id: Annotated[str, typer.Argument(help="A device provisioned with `kouan device add`")],
) -> None:
    """Run an edge agent for one device."""
    from edge.main import run
    from edge.settings import EdgeSettings

    configure_logging()
    run(EdgeSettings(device_id=device_id))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8640,
) -> None:
    """Run the HTTP API and dashboard."""
    import uvicorn

    configure_logging()
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="info")


@app.command()
def demo(
    trucks: Annotated[int, typer.Option(help="Trucks in the simulated day")] = 1000,
) -> None:
    """Start stack, collector, API and simulator; Ctrl-C stops everything started here."""
    from kouan.demo import run_demo

    configure_logging()
    raise typer.Exit(run_demo(trucks))


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 and name the first broken record if any."""
    import psycopg

    from kouan.audit import verify

    with psycopg.connect(CommonSettings().database_url) as conn:
        report = verify(conn)
    if not report.intact:
        console.print(
            f"[red]Audit log chain broken at record {report.first_broken_id}: {report.problem} "
            f"({report.records} records read)[/red]"
        )
        print(report.first_broken_id)
        raise typer.Exit(1)
    console.print(f"Audit log intact: {report.records} records")
