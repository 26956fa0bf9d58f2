"""Load mode: every event sent is accounted for, through the real collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from kouan.identifiers import parse_container_number
from simulators.load import LoadGenerator, LoadPlan, container_number, run_load
from tests.conftest import start_collector


def test_container_numbers_valid_paired():
    numbers = [container_number(device, seq) for device in range(4) for seq in range(500)]

    # seqs 2k and 2k+1 of a device name one container; devices never share one.
    assert len(set(numbers)) == 4 * 250
    assert container_number(1, 10) == container_number(1, 11) != container_number(1, 12)
    for number in numbers:
        assert parse_container_number(number, repair=False).value == number


def test_container_numbers_serial_offset():
    assert container_number(0, 0, serial_offset=7) == container_number(0, 14)
    assert container_number(0, 0, serial_offset=999_999) != container_number(0, 0)


@pytest.mark.slow
def test_load_direct_steps_all_receipted(settings, site_id, processes):
    start_collector(processes, site_id, 1)
    plan = LoadPlan(site_id=site_id, devices=2, steps=[(100.0, 1.0), (200.0, 1.0)], full_speed_events=300)

    result = run_load(settings, plan, transport="direct", drain_timeout_s=90)

    assert [step.sent for step in result.steps] == [100, 200, 300]
    assert [step.rate for step in result.steps] == [100.0, 200.0, None]
    assert result.sent == 600
    assert result.receipted == 600
    assert result.unreceipted == 0
    assert result.drained is True
    assert result.receipt_repeats == 0
    for device in result.devices:
        assert device.sent == 300
        assert device.last_seq - device.first_seq + 1 == device.sent
        assert device.broker_acked == device.sent
    for step in result.steps:
        assert step.receipted == step.sent
        assert 0 < step.latency_p50_ms <= step.latency_p99_ms < 30_000
    # A steady step of 100 events/s takes about a second to publish.
    assert 0.9 < result.steps[0].elapsed_s < 5

    with psycopg.connect(settings.database_url) as conn:
        stored = conn.execute(
            "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM events "
            "WHERE site_id = %s GROUP BY device_id ORDER BY device_id",
            (site_id,),
        ).fetchall()
    assert [(count, distinct) for _, count, distinct, _, _ in stored] == [(300, 300), (300, 300)]
    assert {(low, high) for _, _, _, low, high in stored} == {(1, 300)}


@pytest.mark.slow
def test_direct_continues_earlier_seqs(settings, site_id, processes):
    start_collector(processes, site_id, 1)
    plan = LoadPlan(site_id=site_id, devices=1, steps=[(50.0, 1.0)])
    first = run_load(settings, plan, transport="direct", drain_timeout_s=90)

    generator = LoadGenerator(settings, plan, "direct")
    generator.provision()
    try:
        step = generator.run_full_speed(40)
        generator.drain(90)
    finally:
        generator.close()

    assert first.devices[0].last_seq == 50
    assert generator.result.devices[0].first_seq == 51
    assert generator.result.devices[0].last_seq == 90
    assert step.receipted == 40
    latencies = generator.receipt_latencies(step)
    assert len(latencies) == 40 and all(value is not None and value > 0 for value in latencies)


@pytest.mark.slow
def test_load_edge_transport_all_receipted(settings, site_id, processes):
    start_collector(processes, site_id, 1)
    plan = LoadPlan(site_id=site_id, devices=1, steps=[(20.0, 1.0)])

    result = run_load(settings, plan, transport="edge", drain_timeout_s=90)

    assert result.sent == 20
    assert result.receipted == 20
    assert result.devices[0].last_seq == result.devices[0].first_seq + 19
    # The agents count receipts per device only, and their PUBACKs are not counted.
    assert result.steps[0].receipted is None
    assert result.devices[0].broker_acked is None


def test_load_generator_rejects_unknown_transport(settings):
    with pytest.raises(ValueError, match="not one of direct, edge"):
        LoadGenerator(settings, LoadPlan(), "carrier-pigeon")


def _simulate_load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kouan", "simulate", "load", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},  # one line per message: Rich wraps at the width
    )


@pytest.mark.slow
def test_load_cli_reports_every_step(site_id, processes, tmp_path):
    start_collector(processes, site_id, 1)
    report = tmp_path / "load.json"

    result = _simulate_load(
        "--site", site_id, "--devices", "2", "--rate", "100", "--step-seconds", "1",
        "--full-speed-events", "200", "--report", str(report),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Step 1/2: 100 events/s for 1 s" in result.stdout
    assert "Step 2/2: 200 events as fast as possible" in result.stdout
    assert "300 receipted by the collector, 0 not receipted" in result.stdout
    document = json.loads(report.read_text())
    assert document["sent"] == 300
    assert document["unreceipted"] == 0
    assert [step["sent"] for step in document["steps"]] == [100, 200]
    assert [step["receipted"] for step in document["steps"]] == [100, 200]
    assert all(step["latency_p99_ms"] > 0 for step in document["steps"])
    assert [device["broker_acked"] for device in document["devices"]] == [150, 150]


def test_load_cli_rejects_unknown_transport():
    result = _simulate_load("--transport", "carrier-pigeon")

    assert result.returncode == 2
    assert "'carrier-pigeon' is not one of direct, edge" in result.stderr


def test_cli_rejects_edge_full_speed():
    result = _simulate_load("--transport", "edge", "--full-speed-events", "10")

    assert result.returncode == 2
    assert "need --transport direct" in result.stderr


def test_cli_rejects_bad_sizes():
    cases = [
        (("--devices", "0"), "--devices"),
        (("--rate", "-5"), "Step -5 events/s for 10 s is invalid: both must be above 0"),
        (("--rate", "100", "--step-seconds", "0.02"), "less than one event for each of the 4 devices"),
        (("--full-speed-events", "3"), "3 full-speed events is less than one for each of the 4 devices"),
        (("--workers", "0"), "--workers"),
    ]
    for args, message in cases:
        result = _simulate_load(*args)

        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr


def test_plan_rejects_empty_steps():
    with pytest.raises(ValueError, match="less than one event for each of the 4 devices"):
        LoadPlan(devices=4, steps=[(1.0, 2.0)])
    with pytest.raises(ValueError, match="0 devices is invalid"):
        LoadPlan(devices=0)
