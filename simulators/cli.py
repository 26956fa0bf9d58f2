"""``kouan simulate``: run a scenario, grade a run, or generate load."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

simulate_app = typer.Typer(
    help="A port in software: scenarios with injected faults, their grade, and load.", no_args_is_help=True
)
console = Console()

ApiUrl = Annotated[str, typer.Option(help="Base URL of the Kouan API")]


def default_day(timezone: str) -> date:
    """Yesterday in the port's time zone, so that no simulated event lies in the future."""
    return datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)


def _check_api(api_url: str) -> None:
    import httpx

    httpx.get(f"{api_url}/healthz", timeout=5).raise_for_status()


@simulate_app.command("run")
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file or shipped name, e.g. bad_day")],
    api_url: ApiUrl = "http://127.0.0.1:8640",
    seed: Annotated[int | None, typer.Option(help="Random seed; the scenario's when unset")] = None,
    speed: Annotated[float | None, typer.Option(help="Simulated seconds per real second")] = None,
    trucks: Annotated[int | None, typer.Option(help="Scale the hourly arrivals to this many trucks")] = None,
    day: Annotated[str | None, typer.Option(help="Simulated day YYYY-MM-DD; yesterday when unset")] = None,
    truth: Annotated[Path | None, typer.Option(help="Ground-truth JSON file to write")] = None,
    plan_only: Annotated[bool, typer.Option(help="Write the truth file and stop, sending nothing")] = False,
) -> None:
    """Run a scenario through real edge agents, broker and API, and write its ground truth."""
    from kouan.cli import configure_logging
    from kouan.settings import CommonSettings
    from simulators.plan import plan_day
    from simulators.runner import run_day
    from simulators.scenario import ScenarioError, load_scenario
    from simulators.truth import write_truth

    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per declaration write otherwise
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if trucks is not None:
        loaded = loaded.scaled_to(trucks)
    chosen_seed = loaded.seed if seed is None else seed
    try:
        chosen_day = date.fromisoformat(day) if day else default_day(loaded.site.timezone)
    except ValueError as exc:
        console.print(f"[red]--day {day!r} is not a date; write it as YYYY-MM-DD[/red]")
        raise typer.Exit(2) from exc
    truth_path = truth or Path(f"{loaded.name}-{chosen_seed}-{chosen_day}.truth.json")

    plan = plan_day(loaded, chosen_seed, chosen_day)
    if plan_only:
        write_truth(plan, truth_path)
        console.print(
            f"Plan of {len(plan.trucks)} trucks and {len(plan.faults)} faults written to {truth_path}"
        )
        return

    import httpx
    from rich.progress import Progress

    try:
        _check_api(api_url)
    except httpx.HTTPError as exc:
        console.print(f"[red]API at {api_url} is not reachable ({exc}); start it with `kouan api`[/red]")
        raise typer.Exit(1) from exc

    with Progress(console=console) as progress:
        task = progress.add_task(f"{loaded.name} {chosen_day}", total=None)
        ledger = run_day(
            CommonSettings(),
            plan,
            api_url=api_url,
            speed=speed or loaded.speed,
            truth_path=truth_path,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(ledger.summary())
    console.print(f"Truth: {truth_path}; grade it with `kouan simulate grade {truth_path}`")


@simulate_app.command("grade")
def grade(
    truth: Annotated[Path, typer.Argument(help="Truth file written by `kouan simulate run`")],
    api_url: Annotated[
        str | None, typer.Option(help="Base URL of the Kouan API; the run's when unset")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the grade as JSON")] = False,
) -> None:
    """Compare Kouan's alerts, decisions, statuses and stored events with the truth."""
    from simulators.grade import grade_run, print_grade
    from simulators.truth import read_truth

    if not truth.exists():
        console.print(f"[red]Truth file {truth} not found; write one with `kouan simulate run`[/red]")
        raise typer.Exit(2)
    _, ledger = read_truth(truth)
    url = api_url or (ledger or {}).get("api_url") or "http://127.0.0.1:8640"
    result = grade_run(truth, url)
    if as_json:
        print(result.to_json())
    else:
        print_grade(result, console)


@simulate_app.command("load")
def load(
    site: Annotated[str, typer.Option(help="Site id the load devices belong to")] = "LOAD",
    devices: Annotated[int, typer.Option(min=1, help="Devices publishing side by side")] = 4,
    rate: Annotated[
        list[float] | None,
        typer.Option(
            help="Events/s; repeat for steps, e.g. --rate 1000 --rate 5000. "
            "Without --rate and --full-speed-events: one step of 1,000 events/s"
        ),
    ] = None,
    step_seconds: Annotated[float, typer.Option(help="Seconds each rate step lasts")] = 10.0,
    full_speed_events: Annotated[
        int,
        typer.Option(min=0, help="After the steps, send this many events as fast as possible (direct only)"),
    ] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes that sign and publish (direct only)")] = 2,
    transport: Annotated[
        str, typer.Option(help="direct (pre-signed, straight to the broker) or edge")
    ] = "direct",
    report: Annotated[Path | None, typer.Option(help="Write the accounting as JSON to this file")] = None,
) -> None:
    """Publish gate events at steady rates or at full speed and account for every one sent."""
    from kouan.cli import configure_logging
    from kouan.settings import CommonSettings
    from simulators.load import LoadPlan, run_load

    configure_logging()
    if transport not in ("direct", "edge"):
        raise typer.BadParameter(f"{transport!r} is not one of direct, edge", param_hint="--transport")
    if full_speed_events and transport != "direct":
        raise typer.BadParameter(
            "full-speed events need --transport direct", param_hint="--full-speed-events"
        )
    rates = rate
    if rates is None:
        rates = [] if full_speed_events else [1000.0]
    try:
        plan = LoadPlan(
            site_id=site,
            devices=devices,
            steps=[(value, step_seconds) for value in rates],
            full_speed_events=full_speed_events,
            workers=workers,
        )
    except ValueError as exc:
        raise typer.BadParameter(
            str(exc), param_hint="--rate, --step-seconds or --full-speed-events"
        ) from exc
    result = run_load(CommonSettings(), plan, transport=transport, on_step=console.print)
    table = Table(
        "step",
        "target",
        "sent",
        "sent/s",
        "receipted",
        "p50 ms",
        "p99 ms",
        title="发布到回执 Publish to receipt",
    )
    for number, step in enumerate(result.steps, start=1):
        table.add_row(
            str(number),
            "full speed" if step.rate is None else f"{step.rate:,.0f}/s",
            f"{step.sent:,}",
            f"{step.achieved_rate:,.0f}",
            "-" if step.receipted is None else f"{step.receipted:,}",
            "-" if step.latency_p50_ms is None else f"{step.latency_p50_ms:,.1f}",
            "-" if step.latency_p99_ms is None else f"{step.latency_p99_ms:,.1f}",
        )
    console.print(table)
    console.print(result.summary())
    if report is not None:
        report.write_text(result.to_json(), encoding="utf-8")
        console.print(f"Accounting written to {report}")
    if result.unreceipted:
        console.print(
            f"[yellow]Check that a collector consumes site {site} (kouan collector) and read its log; "
            "events it quarantined are never receipted."
        )
        raise typer.Exit(1)
