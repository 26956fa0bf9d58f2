"""Run the benchmark: baselines, Kouan's ingest, decisions, queries, then the report.

All load comes from the simulator's load mode (``simulators.load``, the engine of
``kouan simulate load``), on one private stack, in this order:

1. the floor baseline (``mosquitto_sub | psql COPY``) and the naive baseline (paho
   callback, one INSERT per message), each fed the same signed load at full speed;
2. Kouan's collector and API: fixed-rate steps with publish-to-receipt latency, the
   5,000 events/s step with container status queries at 200 requests/s and gate
   decision probes beside it, then the full-speed run for sustained ingest;
3. the events table filled in bulk to 1 M and 10 M rows (100 M with
   ``--with-100m``) with timeline queries at each size.

Usage: ``python -m bench`` (``make bench``); ``python -m bench --help`` for sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import baselines, decision_roundtrip, timeline
from bench.harness import BenchError, BenchStack, ResourceSampler, Usage, free_port
from bench.probes import DecisionProbe, decision_prober, percentiles_ms, status_query_driver
from kouan.settings import CommonSettings
from simulators.load import Burst, LoadGenerator, LoadPlan, StepAccount, container_number, worker_pids

KOUAN_SITE = "BENCH"
BASELINE_SITE = "BENCHB"
NAIVE_TABLE = "bench_naive_events"
FLOOR_TABLE = "bench_floor_lines"
STATUS_QUERY_RATE = 200.0
LOADED_RATE = 5000
COLLECTOR_CLIENT_ID = "bench-collector"
WARM_UP_EVENTS = 4_000
# The full-speed run is sized to take about this long at the warm-up's rate.
FULL_SPEED_TARGET_S = 30.0
# Maximum wait for a phase's backlog after its last publish.
DRAIN_CAP_S = 30.0
RECORDED_RESULTS = Path("docs/bench/results.json")
REPORT = Path("docs/benchmarks.md")
# A quick run is a try-out: it never replaces the recorded results.
QUICK_RESULTS = Path(tempfile.gettempdir()) / "kouan-bench-quick" / "results.json"

console = Console(stderr=True)


@dataclass
class Options:
    rates: list[int]
    step_s: float
    full_speed_events: int
    baseline_events: int
    devices: int
    collectors: int
    sizes: list[int]
    profile: bool
    keep: bool
    results_path: Path
    report_path: Path | None


@dataclass
class Phase:
    """One load phase of Kouan's collector: the simulator's step account and measurements."""

    name: str
    step: StepAccount
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def burst(self) -> Burst:
        assert self.step.burst is not None
        return self.step.burst


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2500,5000", help="Fixed rates in events/s, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="Duration of each fixed-rate step")
    parser.add_argument("--full-speed-events", type=int, default=200_000, help="Events in the full-speed run")
    parser.add_argument("--baseline-events", type=int, default=60_000, help="Events per baseline run")
    parser.add_argument(
        "--devices", type=int, default=32, help="Simulated lane devices, one MQTT connection each"
    )
    parser.add_argument(
        "--collectors",
        type=int,
        default=os.cpu_count() or 1,
        help="Collector processes (kouan collector --processes); default one per core",
    )
    parser.add_argument("--sizes", default="1M,10M", help="Events-table sizes for timeline queries")
    parser.add_argument(
        "--with-100m", action="store_true", help="Also fill to 100 M rows (about 30 minutes more)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="Record a py-spy profile of the collectors' writer processes"
    )
    parser.add_argument("--keep", action="store_true", help="Keep the stack's directory and logs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Small sizes, for trying the benchmark out: rates 1000,5000, 4 s steps, 20,000 full-speed "
        "and 10,000 baseline events, tables of 100 k and 300 k rows (these replace the size options); "
        f"results go to {QUICK_RESULTS} and no page is updated",
    )
    parser.add_argument(
        "--results", type=Path, default=None, help=f"JSON results file (default {RECORDED_RESULTS})"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help=f"Page whose results section is updated (default {REPORT})"
    )
    parser.add_argument("--no-report", action="store_true", help="Write only the JSON results")
    args = parser.parse_args(argv)

    sizes = [_parse_size(text) for text in args.sizes.split(",") if text]
    if args.with_100m:
        sizes.append(100_000_000)
    options = Options(
        rates=[int(text) for text in args.rates.split(",") if text],
        step_s=args.step_seconds,
        full_speed_events=args.full_speed_events,
        baseline_events=args.baseline_events,
        devices=args.devices,
        collectors=max(1, args.collectors),
        sizes=sizes,
        profile=args.profile,
        keep=args.keep,
        results_path=args.results or (QUICK_RESULTS if args.quick else RECORDED_RESULTS),
        report_path=_report_path(args),
    )
    if args.quick:
        options.rates, options.step_s = [1000, 5000], 4.0
        options.full_speed_events, options.baseline_events = 20_000, 10_000
        options.sizes = [100_000, 300_000]
    return options


def _report_path(args: argparse.Namespace) -> Path | None:
    """Return the page to update: none with --no-report, and with --quick only when named."""
    if args.no_report:
        return None
    if args.report is not None:
        return args.report
    return None if args.quick else REPORT


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * factor)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.time()
    console.print("[bold]Kouan benchmark[/bold]: starting a private stack")
    bench = BenchStack.start(keep=options.keep)
    sampler = ResourceSampler(
        {
            "mosquitto": bench.mosquitto_pids,
            "postgresql": bench.postgres_pids,
            "collector": lambda: bench.process_pids("collector"),
            "api": lambda: bench.process_pids("api"),
            "naive baseline": lambda: bench.process_pids("naive"),
            "floor baseline": lambda: bench.process_pids("floor"),
            "load generator": worker_pids,
        }
    )
    sampler.start()
    try:
        results = run_all(bench, sampler, options)
    finally:
        sampler.close()
        bench.close()
        if options.keep:
            console.print(f"Stack directory kept: {bench.home}")

    results["environment"] = environment(options, time.time() - started)
    from bench import report

    if options.profile:
        results["profile"] = report.summarise_profile(options.results_path.parent / "collector-profile.txt")
    options.results_path.parent.mkdir(parents=True, exist_ok=True)
    options.results_path.write_text(json.dumps(results, indent=2, default=_jsonable))

    report.print_summary(console, results)
    console.print(f"Results written to {options.results_path}")
    if options.report_path is not None:
        report.write(results, options.report_path, options.results_path.parent)
        console.print(f"Report updated: {options.report_path}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def run_all(bench: BenchStack, sampler: ResourceSampler, options: Options) -> dict[str, Any]:
    kouan_devices = bench.provision_devices(KOUAN_SITE, options.devices)
    baseline_devices = bench.provision_devices(BASELINE_SITE, options.devices)
    [exit_device] = bench.provision_devices(decision_roundtrip.EXIT_SITE, 1, direction="out")
    results: dict[str, Any] = {"usage": {}}

    baseline_load = load_generator(bench, BASELINE_SITE, baseline_devices)
    try:
        results["floor"] = run_floor(bench, sampler, options, baseline_load)
        results["naive"] = run_naive(bench, sampler, options, baseline_load)
    finally:
        baseline_load.close()
    results["kouan"] = run_kouan(bench, sampler, options, kouan_devices, exit_device)
    results["timeline"] = run_timeline(bench, sampler, options)
    results["usage"] = {
        phase: {
            group: _usage_dict(usage)
            for group, usage in groups.items()
            if usage.cpu_s or usage.peak_memory_bytes
        }
        for phase, groups in sampler.usage.items()
    }
    return results


def _usage_dict(usage: Usage) -> dict[str, float]:
    return {
        "cpu_percent": round(usage.cpu_percent, 1),
        "cpu_s": round(usage.cpu_s, 2),
        "peak_memory_mb": round(usage.peak_memory_bytes / 2**20, 1),
        "wall_s": round(usage.wall_s, 2),
    }


# --- baselines ---------------------------------------------------------------------------


def load_generator(bench: BenchStack, site_id: str, devices: list[Any]) -> LoadGenerator:
    """Return the simulator's load generator for devices the benchmark provisioned.

    Container serials start at 0, so the status queries know which numbers exist.
    """
    settings = CommonSettings(
        home=bench.home, mqtt_port=bench.stack.mqtt_port, database_url=bench.stack.database_url
    )
    plan = LoadPlan(site_id=site_id, devices=len(devices), steps=[], workers=2, serial_offset=0)
    generator = LoadGenerator(settings, plan, "direct", identities=devices)
    generator.provision()
    return generator


def _baseline_total(options: Options) -> int:
    return options.baseline_events // options.devices * options.devices


def run_floor(
    bench: BenchStack, sampler: ResourceSampler, options: Options, load: LoadGenerator
) -> dict[str, Any]:
    total = _baseline_total(options)
    baselines.create_tables(bench.stack.database_url, NAIVE_TABLE, FLOOR_TABLE)
    console.print(f"Floor baseline: mosquitto_sub | psql COPY, {total:,} events at full speed")
    process = baselines.start_floor(
        bench.stack.mqtt_port,
        bench.service_credentials(),
        BASELINE_SITE,
        total,
        bench.stack.database_url,
        FLOOR_TABLE,
        bench.home / "log" / "floor.log",
    )
    bench.processes["floor"] = process  # type: ignore[assignment]
    time.sleep(1.0)  # mosquitto_sub connects and subscribes

    sampler.begin("floor baseline")
    step = load.run_full_speed(total)
    done_at = _wait_for_exit(process, timeout_s=120)
    sampler.end()
    bench.processes.pop("floor", None)

    assert step.burst is not None and step.log is not None
    with psycopg.connect(bench.stack.database_url) as conn:
        accounting = _accounting(
            conn,
            f"SELECT line::jsonb->>'device_id', (line::jsonb->>'seq')::bigint FROM {FLOOR_TABLE}",
            step.burst,
        )
    return {"events": total, "rate": _rate(total, step.log.started_at, done_at), **accounting}


def _wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise BenchError(f"floor baseline did not finish within {timeout_s:.0f} s")
        time.sleep(0.01)
    if process.returncode != 0:
        raise BenchError(f"floor baseline pipeline failed with exit code {process.returncode}")
    return time.time()


def run_naive(
    bench: BenchStack, sampler: ResourceSampler, options: Options, load: LoadGenerator
) -> dict[str, Any]:
    total = _baseline_total(options)
    console.print(f"Naive baseline: paho callback, one INSERT per message, {total:,} events")
    bench.spawn(
        "naive",
        [sys.executable, "-m", "bench.baselines", "naive", BASELINE_SITE, NAIVE_TABLE],
        ready_text=b"subscribed",
    )
    sampler.begin("naive baseline")
    step = load.run_full_speed(total)
    assert step.burst is not None and step.log is not None
    with psycopg.connect(bench.stack.database_url, autocommit=True) as conn:
        stored = _wait_for_rows(
            conn, f"SELECT count(*) FROM {NAIVE_TABLE}", total, step.log.finished_at + DRAIN_CAP_S
        )
        sampler.end()
        bench.stop("naive")
        done_at = conn.execute(f"SELECT extract(epoch FROM max(stored_at)) FROM {NAIVE_TABLE}").fetchone()[0]
        accounting = _accounting(conn, f"SELECT device_id, seq FROM {NAIVE_TABLE}", step.burst)
    drained = stored >= total
    if not drained:
        console.print(
            f"[yellow]Naive baseline: {stored:,} of {total:,} stored {DRAIN_CAP_S:.0f} s after the load"
        )
    return {
        "events": total,
        "rate": _rate(stored, step.log.started_at, float(done_at)),
        "drained": drained,
        **accounting,
    }


def _wait_for_rows(conn: psycopg.Connection, count_sql: str, expected: int, deadline: float) -> int:
    """Poll until ``count_sql`` reaches ``expected`` or the Unix time ``deadline`` passes."""
    while True:
        count = int(conn.execute(count_sql).fetchone()[0])
        if count >= expected or time.time() > deadline:
            return count
        time.sleep(0.25)


# Rows whose (device_id, seq) fall in a burst's seq ranges, given as three arrays.
IN_BURST = """
    JOIN unnest(%s::text[], %s::bigint[], %s::bigint[]) AS burst(device_id, first_seq, last_seq)
      ON r.device_id = burst.device_id AND r.seq BETWEEN burst.first_seq AND burst.last_seq
"""


def _accounting(conn: psycopg.Connection, rows_sql: str, burst: Burst) -> dict[str, int]:
    """Count lost and duplicated (device_id, seq) of a burst among the rows of ``rows_sql``."""
    row = conn.execute(
        f"""
        WITH rows AS ({rows_sql})
        SELECT count(*), count(DISTINCT (r.device_id, r.seq))
        FROM rows AS r(device_id, seq) {IN_BURST}
        """,
        burst.seq_ranges(),
    ).fetchone()
    stored, distinct = int(row[0]), int(row[1])
    return {"stored": stored, "lost": burst.total - distinct, "duplicates": stored - distinct}


def _rate(events: int, started_at: float, done_at: float) -> float:
    return events / (done_at - started_at) if done_at > started_at else float("nan")


# --- Kouan ---------------------------------------------------------------------------------


def run_kouan(
    bench: BenchStack, sampler: ResourceSampler, options: Options, devices: list[Any], exit_device: Any
) -> dict[str, Any]:
    console.print("Kouan: starting collector and API")
    _start_collector(bench, options.collectors)
    api_port = free_port()
    # The status probe is one caller at STATUS_QUERY_RATE; the API's per-caller limit
    # (1,200 per minute by default) is meant for people and integrators, not this.
    bench.spawn_kouan(
        "api",
        "api",
        "--port",
        str(api_port),
        ready_text=b"Application startup complete",
        KOUAN_RATE_LIMIT_PER_MINUTE=str(int(STATUS_QUERY_RATE * 60 * 2)),
    )
    headers = _api_headers(bench)
    load = load_generator(bench, KOUAN_SITE, devices)
    try:
        phases, at_rest = _kouan_phases(bench, sampler, options, load, exit_device, api_port, headers)
        bench.stop("api")
        bench.stop("collector")
        return _kouan_results(bench, load, phases, at_rest)
    finally:
        load.close()


def _kouan_phases(
    bench: BenchStack,
    sampler: ResourceSampler,
    options: Options,
    load: LoadGenerator,
    exit_device: Any,
    api_port: int,
    headers: dict[str, str],
) -> tuple[list[Phase], dict[str, Any]]:
    devices = load.identities
    phases: list[Phase] = []

    # Warm-up at full speed doubles as calibration: the full-speed run is sized so
    # that it drains within FULL_SPEED_TARGET_S even when the collector is slow.
    warm = Phase("warm-up", load.run_full_speed(WARM_UP_EVENTS))
    phases.append(warm)
    assert warm.step.log is not None
    warm_s = _drain(bench, warm.burst, DRAIN_CAP_S) - warm.step.log.started_at
    capacity = warm.burst.total / warm_s
    console.print(
        f"Warm-up: {warm.burst.total:,} events committed in {warm_s:.1f} s ({capacity:,.0f} events/s)"
    )

    probe_numbers = decision_roundtrip.probe_containers()
    decision_roundtrip.declare_released(bench.stack.database_url, probe_numbers)
    query_numbers = [container_number(index, seq) for index in range(len(devices)) for seq in range(1, 60, 2)]
    probe = DecisionProbe(bench.home, bench.stack.mqtt_port, exit_device, probe_numbers)

    console.print("Gate decision round trip at rest")
    prober = decision_prober(probe, first_seq=1).start()
    time.sleep(max(3.0, options.step_s / 2))
    at_rest = prober.finish()
    decision_seq = at_rest["next_seq"]

    full_events = int(min(options.full_speed_events, max(WARM_UP_EVENTS, capacity * FULL_SPEED_TARGET_S)))
    console.print(f"Kouan at full speed: {full_events // len(devices) * len(devices):,} events")
    profiler = _start_profiler(bench, options)
    sampler.begin("kouan full speed")
    full = Phase("full speed", load.run_full_speed(full_events))
    _finish_phase(bench, full, DRAIN_CAP_S + FULL_SPEED_TARGET_S, options.collectors)
    sampler.end()
    if profiler is not None:
        profiler.wait()
    phases.append(full)

    for rate in options.rates:
        console.print(f"Kouan at {rate:,} events/s for {options.step_s:.0f} s")
        # Decisions are probed at every rate, status queries at the loaded one.
        loaded = rate == LOADED_RATE
        if loaded:
            queries = status_query_driver(
                f"http://127.0.0.1:{api_port}", query_numbers, STATUS_QUERY_RATE, headers
            ).start()
        prober = decision_prober(probe, first_seq=decision_seq).start()
        sampler.begin(f"kouan {rate}/s")
        phase = Phase(f"{rate} events/s", load.run_step(rate, options.step_s))
        phase.extra["decisions"] = prober.finish()
        decision_seq = phase.extra["decisions"]["next_seq"]
        if loaded:
            phase.extra["queries"] = queries.finish()
        _finish_phase(bench, phase, DRAIN_CAP_S, options.collectors)
        sampler.end()
        phases.append(phase)
    return phases, at_rest


def _start_collector(bench: BenchStack, processes: int) -> None:
    bench.spawn_kouan(
        "collector",
        "collector",
        "--processes",
        str(processes),
        ready_text=b"subscribed in group",
        ready_count=processes,
        KOUAN_SITE_FILTER="+",
        KOUAN_SHARE_GROUP="bench",
        KOUAN_CLIENT_ID=COLLECTOR_CLIENT_ID,
    )


def _collector_client_ids(processes: int) -> list[str]:
    """Return the MQTT client ids of ``kouan collector --processes N`` (one process keeps its own)."""
    if processes == 1:
        return [COLLECTOR_CLIENT_ID]
    return [f"{COLLECTOR_CLIENT_ID}-{index}" for index in range(1, processes + 1)]


def _finish_phase(bench: BenchStack, phase: Phase, cap_s: float, processes: int) -> None:
    """Wait for the phase's events to be committed; past ``cap_s``, drop the backlog.

    A collector slower than the offered rate leaves a backlog at the broker that
    would delay every later phase. It is dropped by killing the collector and
    clearing its MQTT session; the phase records how many events it held, and
    those events count as not committed (an edge agent would send them again).
    """
    committed = _committed(bench, phase.burst)
    deadline = time.monotonic() + cap_s
    while committed < phase.burst.total and time.monotonic() < deadline:
        time.sleep(0.25)
        committed = _committed(bench, phase.burst)
    phase.extra["committed_within_cap"] = committed
    if committed >= phase.burst.total:
        return

    console.print(
        f"[yellow]{phase.name}: {phase.burst.total - committed:,} events still queued after {cap_s:.0f} s; "
        "dropping the backlog"
    )
    bench.kill("collector")
    for client_id in _collector_client_ids(processes):
        _clear_session(bench, client_id)
    _start_collector(bench, processes)


def _clear_session(bench: BenchStack, client_id: str) -> None:
    """Discard the collector's persistent MQTT session and the messages queued for it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(*bench.service_credentials())
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    client.connect("127.0.0.1", bench.stack.mqtt_port, clean_start=True, properties=properties)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


def _committed(bench: BenchStack, burst: Burst) -> int:
    with psycopg.connect(bench.stack.database_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM event_keys AS r {IN_BURST}", burst.seq_ranges()).fetchone()
    return int(row[0])


def _api_headers(bench: BenchStack) -> dict[str, str]:
    """Create a supervisor API key for the status queries; an API without keys needs none."""
    try:
        from api.security.accounts import create_api_key
    except ImportError:
        return {}

    with psycopg.connect(bench.stack.database_url, autocommit=True) as conn:
        key = create_api_key(conn, "bench", "supervisor", [KOUAN_SITE], actor="bench")
    return {"X-API-Key": key}


def _drain(bench: BenchStack, burst: Burst, cap_s: float) -> float:
    """Wait until the burst's events are committed or ``cap_s`` passes; return the time."""
    deadline = time.monotonic() + cap_s
    while _committed(bench, burst) < burst.total and time.monotonic() < deadline:
        time.sleep(0.1)
    return time.time()


def _start_profiler(bench: BenchStack, options: Options) -> subprocess.Popen[bytes] | None:
    if not options.profile:
        return None
    collector_pid = bench.processes["collector"].pid
    output = options.results_path.parent / "collector-profile.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(collector_pid),
            "--duration",
            "12",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
            "--subprocesses",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kouan_results(
    bench: BenchStack, load: LoadGenerator, phases: list[Phase], at_rest: dict[str, Any]
) -> dict[str, Any]:
    assert load.receipts is not None
    out: dict[str, Any] = {"steps": [], "receipt_repeats": load.receipts.repeats}
    with psycopg.connect(bench.stack.database_url) as conn:
        for phase in phases:
            log = phase.step.log
            assert log is not None
            latencies = np.array(
                [np.nan if value is None else value for value in load.receipt_latencies(phase.step)]
            )
            receipted = ~np.isnan(latencies)
            accounting = _accounting(
                conn, f"SELECT device_id, seq FROM events WHERE site_id = '{KOUAN_SITE}'", phase.burst
            )
            committed_at = np.asarray(log.published_at)[receipted] + latencies[receipted]
            finished = float(committed_at.max()) if len(committed_at) else float("nan")
            step = {
                "name": phase.name,
                "target_rate": phase.burst.rate,
                "events": phase.burst.total,
                "offered_rate": log.offered_rate,
                "sustained_rate": _rate(int(receipted.sum()), log.started_at, finished),
                "latency": percentiles_ms(latencies[receipted]),
                "unreceipted": int((~receipted).sum()),
                "backlog_dropped": phase.burst.total
                - phase.extra.get("committed_within_cap", phase.burst.total),
                **accounting,
            }
            if "queries" in phase.extra:
                queries = phase.extra["queries"]
                step["status_queries"] = {
                    **percentiles_ms(queries["latencies"]),
                    "statuses": queries["statuses"],
                    "achieved_rate": queries["achieved_rate"],
                    "not_sent": queries["not_sent"],
                }
            if "decisions" in phase.extra:
                step["decisions"] = _decision_summary(phase.extra["decisions"])
            out["steps"].append(step)
        out["quarantined"] = int(
            conn.execute(
                "SELECT count(*) FROM quarantine WHERE client_device LIKE %s", (f"{KOUAN_SITE}%",)
            ).fetchone()[0]
        )
    out["decisions_at_rest"] = _decision_summary(at_rest)
    return out


def _decision_summary(result: dict[str, Any]) -> dict[str, Any]:
    return {**percentiles_ms(result["latencies"]), "sent": result["sent"], "decisions": result["decisions"]}


# --- timeline -----------------------------------------------------------------------------


def run_timeline(bench: BenchStack, sampler: ResourceSampler, options: Options) -> list[dict[str, Any]]:
    results = []
    target = max(options.sizes)
    with (
        psycopg.connect(bench.stack.database_url, autocommit=True) as conn,
        Progress(
            TextColumn("Filling events table"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} / {task.total:,.0f} rows"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("fill", total=target)
        origin = timeline.fill_origin(conn, target)
        have = 0
        for size in sorted(options.sizes):
            sampler.begin(f"fill to {size:,}")
            began = time.monotonic()
            have = timeline.fill_to(conn, origin, have, size, lambda n: progress.advance(task, n))
            fill_s = time.monotonic() - began
            sampler.end()
            latencies = timeline.query_latencies(conn, origin, size)
            chunks = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'events'"
            ).fetchone()[0]
            table_bytes = conn.execute("SELECT hypertable_size('events')").fetchone()[0]
            results.append(
                {
                    "rows": size,
                    "chunks": int(chunks),
                    "table_gb": round(int(table_bytes) / 2**30, 2),
                    "fill_s": round(fill_s, 1),
                    **{name: percentiles_ms(values) for name, values in latencies.items()},
                }
            )
    return results


# --- environment --------------------------------------------------------------------------


def environment(options: Options, elapsed_s: float) -> dict[str, Any]:
    def output(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in output("lscpu").splitlines()
            if line.startswith("Model name")
        ),
        "",
    )
    memory_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 2**20, 1),
        "kernel": output("uname", "-r"),
        "postgres": output("psql", "--version"),
        "mosquitto": output("mosquitto", "-h").splitlines()[0] if output("mosquitto", "-h") else "",
        "load_average_at_end": os.getloadavg(),
        "elapsed_s": round(elapsed_s, 1),
        "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "devices": options.devices,
    }
