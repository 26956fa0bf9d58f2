"""``kouan import ...``: terminal feeds through a tos_feed device, customs files into declarations."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

import_app = typer.Typer(help="Import terminal feeds and customs files.", no_args_is_help=True)


def _sender_zones(values: list[str]) -> dict[str, str]:
    zones = {}
    for value in values:
        sender, _, zone = value.partition("=")
        if not sender or not zone:
            raise typer.BadParameter(f"{value!r} is not SENDER=ZONE, e.g. ITGOAVTE=Europe/Rome")
        zones[sender] = zone
    return zones


SenderZones = Annotated[
    list[str], typer.Option("--sender-zone", help="Zone of a UNB sender, SENDER=ZONE; repeatable")
]
Timezone = Annotated[str, typer.Option(help="IANA zone of EDIFACT times without a zone")]


@import_app.command("tos-feed")
def tos_feed(
    device_id: Annotated[str, typer.Argument(help="A device provisioned with --kind tos_feed")],
    drop_dir: Annotated[Path, typer.Option(help="Directory the terminal writes files into")],
    timezone: Timezone = "Asia/Shanghai",
    sender_zone: SenderZones = [],  # noqa: B006 (typer reads the default, never mutates it)
    http_port: Annotated[int, typer.Option(help="HTTP drop on 127.0.0.1 (POST /drop/NAME); 0 = off")] = 0,
) -> None:
    """Watch a drop directory: every CODECO, COARRI or DCSA file becomes signed events."""
    from edge.adapters.tos import TosFeedSettings, run
    from kouan.cli import configure_logging

    configure_logging()
    run(
        TosFeedSettings(
            device_id=device_id,
            drop_dir=drop_dir,
            tos_timezone=timezone,
            tos_sender_timezones=_sender_zones(sender_zone),
            tos_http_port=http_port,
        )
    )


@import_app.command("file")
def feed_file(
    device_id: Annotated[str, typer.Argument(help="A device provisioned with --kind tos_feed")],
    files: Annotated[
        list[Path], typer.Argument(help="CODECO, COARRI or DCSA files", exists=True, dir_okay=False)
    ],
    timezone: Timezone = "Asia/Shanghai",
    sender_zone: SenderZones = [],  # noqa: B006
    wait_s: Annotated[float, typer.Option(help="Seconds to wait for the collector's receipts")] = 60.0,
) -> None:
    """Send files once through the device's outbox, wait for receipts, print each file's report."""
    from edge.adapters.tos import TosFeed
    from edge.agent import EdgeAgent
    from edge.settings import EdgeSettings
    from kouan.cli import configure_logging
    from kouan.devices import DeviceIdentity

    configure_logging()
    settings = EdgeSettings(device_id=device_id)
    agent = EdgeAgent(DeviceIdentity.load(settings.home, device_id), settings)
    agent.start()
    with tempfile.TemporaryDirectory(prefix="kouan-import-") as directory:
        feed = TosFeed(agent.emit, Path(directory), timezone, _sender_zones(sender_zone))
        for path in files:
            report = feed.process(Path(shutil.copy(path, Path(directory) / path.name)))
            print(json.dumps(report.to_json(), ensure_ascii=False))
        drained = agent.wait_until_drained(wait_s)
    agent.stop()
    if not drained:
        typer.echo(f"Not every event was receipted within {wait_s} s; they stay in the outbox", err=True)
        raise typer.Exit(2)


@import_app.command("customs")
def customs(
    files: Annotated[
        list[Path],
        typer.Argument(help="CUSDEC/CUSRES interchanges or 报关单 JSON", exists=True, dir_okay=False),
    ],
    site: Annotated[str, typer.Option(help="Site the declarations belong to")],
    timezone: Annotated[
        str, typer.Option(help="Zone of the customs authority's times without a zone")
    ] = "Asia/Shanghai",
) -> None:
    """Store declarations and apply customs responses; exit 1 if anything was not imported."""
    import psycopg

    from kouan.cli import configure_logging
    from kouan.formats.customs_import import import_edifact, import_json
    from kouan.settings import CommonSettings

    configure_logging()
    failed = False
    with psycopg.connect(CommonSettings().database_url, autocommit=True) as conn:
        for path in files:
            data = path.read_bytes()
            is_json = data.lstrip(b"\xef\xbb\xbf \r\n\t")[:1] in (b"{", b"[")
            report = (
                import_json(conn, data, site)
                if is_json
                else import_edifact(conn, data, site, ZoneInfo(timezone))
            )
            print(json.dumps({"file": str(path), **report.to_json()}, ensure_ascii=False, default=str))
            failed = failed or bool(report.problems)
    sys.stdout.flush()
    if failed:
        raise typer.Exit(1)
