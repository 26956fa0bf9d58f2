"""Turn benchmark results into a summary table, charts and the results part of the report page.

``docs/benchmarks.md`` keeps its prose; only the text between the ``results:start``
and ``results:end`` markers is regenerated on each run.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.probes import MAX_OUTSTANDING_REQUESTS

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
LOADED_STEP = "5000 events/s"

# Targets of the design: 2-core machine, broker, database, collector, API and load
# generator all on it.
INGEST_TARGET = 10_000.0
COMMIT_P99_TARGET_MS = 100.0
DECISION_P99_TARGET_MS = 20.0
STATUS_P99_TARGET_MS = 25.0
TIMELINE_GROWTH_TARGET = 2.0


def _step(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((step for step in results["kouan"]["steps"] if step["name"] == name), None)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Return (what, target, measured, verdict) for every target of the design."""
    rows = []
    full = _step(results, "full speed")
    loaded = _step(results, LOADED_STEP)

    clean = full is not None and full["lost"] == 0 and full["duplicates"] == 0
    rate = full["sustained_rate"] if full else float("nan")
    rows.append(
        (
            "sustained ingest, QoS 1, full pipeline, zero loss",
            f">= {INGEST_TARGET:,.0f} events/s",
            f"{_fmt(rate, 0)} events/s, lost {full['lost'] if full else 'n/a'}, "
            f"duplicates {full['duplicates'] if full else 'n/a'}",
            _verdict(rate >= INGEST_TARGET and clean),
        )
    )

    p99 = loaded["latency"]["p99_ms"] if loaded else float("nan")
    rows.append(
        (
            "publish -> committed at 5,000 events/s",
            "p99 <= 100 ms",
            f"p99 {_fmt(p99)} ms",
            _verdict(p99 <= COMMIT_P99_TARGET_MS),
        )
    )

    decisions = (loaded or {}).get("decisions")
    if decisions and decisions["n"]:
        measured = f"p99 {_fmt(decisions['p99_ms'])} ms ({decisions['n']} of {decisions['sent']} answered)"
        verdict = _verdict(
            decisions["p99_ms"] <= DECISION_P99_TARGET_MS and decisions["n"] == decisions["sent"]
        )
    else:
        measured, verdict = "not available: no command came back on the lane's commands topic", "not measured"
    rows.append(("gate decision round trip under 5,000 events/s", "p99 <= 20 ms", measured, verdict))

    queries = (loaded or {}).get("status_queries")
    if queries and queries["n"]:
        ok = {code: n for code, n in queries["statuses"].items() if str(code) in ("200", "404")}
        measured = (
            f"p99 {_fmt(queries['p99_ms'])} ms at {_fmt(queries['achieved_rate'], 0)} req/s "
            f"({queries['not_sent']:,} due requests not sent: over {MAX_OUTSTANDING_REQUESTS} outstanding)"
        )
        verdict = _verdict(
            queries["p99_ms"] <= STATUS_P99_TARGET_MS
            and sum(ok.values()) == queries["n"]
            and not queries["not_sent"]
        )
    else:
        measured, verdict = "n/a", "not measured"
    rows.append(("container status query during that ingest, 200 req/s", "p99 <= 25 ms", measured, verdict))

    sizes = results["timeline"]
    if len(sizes) >= 2:
        p99s = [size["container_timeline"]["p99_ms"] for size in sizes]
        growth = max(p99s) / min(p99s)
        measured = " / ".join(
            f"{_rows(size['rows'])}: {_fmt(value, 2)} ms" for size, value in zip(sizes, p99s, strict=True)
        )
        rows.append(
            (
                "container timeline query, p99 as the table grows",
                "flat within 2x",
                f"{measured} ({growth:.2f}x)",
                _verdict(growth <= TIMELINE_GROWTH_TARGET),
            )
        )
    return rows


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(passed: bool) -> str:
    return "met" if passed else "missed"


def _rows(count: int) -> str:
    return f"{count / 1_000_000:g} M" if count >= 1_000_000 else f"{count / 1000:g} k"


def baseline_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Return (pipeline, events/s, lost, duplicates, ratio to Kouan) for the full-speed runs."""
    full = _step(results, "full speed")
    kouan_rate = full["sustained_rate"] if full else float("nan")
    rows = [
        (
            "Kouan collector (validation, signature, storage, correlation, receipts)",
            _fmt(kouan_rate, 0),
            str(full["lost"] if full else "n/a"),
            str(full["duplicates"] if full else "n/a"),
            "1.00",
        )
    ]
    for key, label in (
        ("naive", "naive: paho callback, one INSERT per message"),
        ("floor", "floor: mosquitto_sub | psql COPY, no validation"),
    ):
        baseline = results[key]
        ratio = kouan_rate / baseline["rate"] if baseline["rate"] else float("nan")
        drained = baseline.get("drained", True)
        rows.append(
            (
                label,
                _fmt(baseline["rate"], 0),
                str(baseline["lost"]) if drained else "n/a: not drained within 30 s",
                str(baseline["duplicates"]),
                f"Kouan = {ratio:.2f} x",
            )
        )
    return rows


def print_summary(console: Console, results: dict[str, Any]) -> None:
    table = Table("target", "goal", "measured", "verdict", title="Kouan against its targets")
    for what, goal, measured, verdict in target_rows(results):
        style = {"met": "green", "missed": "red"}.get(verdict, "yellow")
        table.add_row(what, goal, measured, f"[{style}]{verdict}[/{style}]")
    console.print(table)

    table = Table("pipeline", "events/s", "lost", "duplicates", "ratio", title="Full-speed ingest, same load")
    for row in baseline_rows(results):
        table.add_row(*row)
    console.print(table)


def markdown(results: dict[str, Any], charts: list[str]) -> str:
    env = results["environment"]
    lines = [
        START_MARKER,
        "",
        f"Recorded {env['finished_at']} on {env['cpus']} × {env['cpu_model']} CPU, "
        f"{env['memory_gb']} GB memory, "
        f"Linux {env['kernel']}; {env['postgres']}; {env['mosquitto']}. "
        f"Command: `{env['command']}` ({env['elapsed_s']:.0f} s, {env['devices']} simulated lane devices). "
        f"Load average at the end: {', '.join(f'{value:.2f}' for value in env['load_average_at_end'])}.",
        "",
        "### Targets",
        "",
        "| target | goal | measured | verdict |",
        "|---|---|---|---|",
        *(
            f"| {what} | {goal} | {measured} | {verdict} |"
            for what, goal, measured, verdict in target_rows(results)
        ),
        "",
        "### Full-speed ingest against the baselines",
        "",
        "| pipeline | events/s | lost | duplicates | ratio |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in baseline_rows(results)),
        "",
        "### Kouan's steps",
        "",
        "| step | events | offered events/s | committed events/s "
        "| publish → receipt p50 / p99 / max (ms) "
        "| backlog dropped | lost | duplicates |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step in results["kouan"]["steps"]:
        latency = step["latency"]
        dropped = step.get("backlog_dropped", 0)
        lines.append(
            _row(
                step["name"],
                f"{step['events']:,}",
                _fmt(step["offered_rate"], 0),
                _fmt(step["sustained_rate"], 0),
                f"{_fmt(latency['p50_ms'])} / {_fmt(latency['p99_ms'])} / {_fmt(latency['max_ms'])}",
                f"{dropped:,}",
                str(step["lost"] - dropped),
                str(step["duplicates"]),
            )
        )
    lines += ["", _probe_lines(results), "", "### Timeline queries as the events table grows", ""]
    lines += [
        "| rows | chunks | size (GB) | fill (s) | container timeline p50 / p99 (ms) "
        "| site feed p50 / p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for size in results["timeline"]:
        timeline, feed = size["container_timeline"], size["site_feed"]
        lines.append(
            _row(
                _rows(size["rows"]),
                str(size["chunks"]),
                str(size["table_gb"]),
                str(size["fill_s"]),
                f"{_fmt(timeline['p50_ms'], 2)} / {_fmt(timeline['p99_ms'], 2)}",
                f"{_fmt(feed['p50_ms'], 2)} / {_fmt(feed['p99_ms'], 2)}",
            )
        )
    lines += ["", "### CPU and peak memory per process", "", *_usage_lines(results), ""]
    if results.get("profile"):
        lines += ["", "### Collector profile at full speed", "", *_profile_lines(results["profile"]), ""]
    lines += [f"![{name}](bench/{name})" for name in charts]
    lines += ["", END_MARKER]
    return "\n".join(lines)


def _probe_lines(results: dict[str, Any]) -> str:
    rest = results["kouan"]["decisions_at_rest"]
    loaded = _step(results, LOADED_STEP) or {}
    parts = ["| probe | p50 (ms) | p99 (ms) | max (ms) | answered |", "|---|---|---|---|---|"]
    probes = [("gate decision round trip at rest", rest)]
    for step in results["kouan"]["steps"]:
        if step.get("decisions") and step.get("target_rate"):
            probes.append(
                (f"gate decision round trip under {step['target_rate']:,.0f} events/s", step["decisions"])
            )
    for label, probe in probes:
        if probe:
            parts.append(
                _row(
                    label,
                    _fmt(probe["p50_ms"], 2),
                    _fmt(probe["p99_ms"], 2),
                    _fmt(probe["max_ms"], 2),
                    f"{probe['n']} of {probe['sent']}, {', '.join(probe['decisions'])}",
                )
            )
    queries = loaded.get("status_queries")
    if queries:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(queries["statuses"].items()))
        parts.append(
            _row(
                f"container status query at {_fmt(queries['achieved_rate'], 0)} req/s under 5,000 events/s",
                _fmt(queries["p50_ms"], 2),
                _fmt(queries["p99_ms"], 2),
                _fmt(queries["max_ms"], 2),
                f"HTTP {codes}; {queries['not_sent']:,} not sent",
            )
        )
    return "\n".join(parts)


def _usage_lines(results: dict[str, Any]) -> list[str]:
    lines = ["| phase | process | CPU (% of one core) | peak memory (MB, PSS) |", "|---|---|---|---|"]
    for phase, groups in results["usage"].items():
        for group, usage in sorted(groups.items()):
            lines.append(f"| {phase} | {group} | {usage['cpu_percent']} | {usage['peak_memory_mb']} |")
    return lines


def summarise_profile(path: Path, top: int = 18) -> dict[str, Any] | None:
    """Return the writer processes' sample count and their busiest Kouan functions from py-spy output.

    ``path`` contains collapsed stacks (``py-spy record --format raw``): one line per
    distinct stack, frames separated by ``;`` and the sample count last. A
    function's share is inclusive: the samples in which it is anywhere on the stack.
    """
    if not path.exists():
        return None
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_writer_main" not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in {_without_line(frame) for frame in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + count
    ours = {
        frame: count
        for frame, count in inclusive.items()
        if any(f"({package}/" in frame for package in ("collector", "kouan", "psycopg", "json"))
    }
    ranked = sorted(ours.items(), key=lambda item: -item[1])[:top]
    return {
        "samples": total,
        "functions": [(frame, round(100 * count / total, 1)) for frame, count in ranked],
    }


def _without_line(frame: str) -> str:
    """Turn ``name (path:line)`` into ``name (path)``, so a function's lines count together."""
    return re.sub(r":\d+\)$", ")", frame)


def _profile_lines(profile: dict[str, Any]) -> list[str]:
    lines = [
        f"py-spy, 200 samples/s, {profile['samples']:,} samples of the collectors' writer processes; "
        "share of samples with the function anywhere on the stack (the rows nest). "
        + profile.get("source", ""),
        "",
        "| function (file) | share of writer samples |",
        "|---|---|",
    ]
    lines += [_row(f"`{frame}`", f"{share} %") for frame, share in profile["functions"]]
    return lines


def charts(results: dict[str, Any], directory: Path) -> list[str]:
    """Draw latency against rate and query latency against table size as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    steps = [step for step in results["kouan"]["steps"] if step["target_rate"] and step["name"] != "warm-up"]
    figure, axes = plt.subplots(figsize=(6.4, 4))
    rates = [step["target_rate"] for step in steps]
    axes.plot(rates, [step["latency"]["p50_ms"] for step in steps], "o-", label="p50")
    axes.plot(rates, [step["latency"]["p99_ms"] for step in steps], "s-", label="p99")
    for step in steps:
        axes.annotate(
            f"offered {step['offered_rate']:,.0f}/s",
            (step["target_rate"], step["latency"]["p99_ms"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    axes.axhline(COMMIT_P99_TARGET_MS, color="grey", linestyle="--", label="p99 target at 5,000/s")
    axes.set(xlabel="target rate (events/s)", ylabel="publish → receipt (ms)", yscale="log")
    axes.set_title("Kouan: publish-to-commit latency against rate")
    axes.legend()
    figure.tight_layout()
    figure.savefig(directory / "latency-vs-rate.png", dpi=110)
    plt.close(figure)

    sizes = results["timeline"]
    figure, axes = plt.subplots(figsize=(6.4, 4))
    rows = [size["rows"] for size in sizes]
    for key, label in (("container_timeline", "container timeline"), ("site_feed", "site feed")):
        axes.plot(rows, [size[key]["p50_ms"] for size in sizes], "o-", label=f"{label} p50")
        axes.plot(rows, [size[key]["p99_ms"] for size in sizes], "s--", label=f"{label} p99")
    axes.set(xlabel="rows in events", ylabel="query latency (ms)", xscale="log")
    axes.set_title("Timeline query latency against table size")
    axes.legend()
    figure.tight_layout()
    figure.savefig(directory / "query-vs-table-size.png", dpi=110)
    plt.close(figure)
    return ["latency-vs-rate.png", "query-vs-table-size.png"]


def write(results: dict[str, Any], page: Path, chart_directory: Path) -> None:
    """Regenerate the results block of ``page``, creating the page when missing."""
    names = charts(results, chart_directory)
    block = markdown(results, names)
    text = page.read_text() if page.exists() else f"# Benchmarks\n\n{START_MARKER}\n{END_MARKER}\n"
    if START_MARKER not in text or END_MARKER not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{START_MARKER}\n{END_MARKER}\n"
    before, rest = text.split(START_MARKER, 1)
    _, after = rest.split(END_MARKER, 1)
    page.write_text(before + block + after)
