"""Load mode: every event sent is accounted for, through the real collector."""

from __future__ import annotations

import pytest

from kouan.identifiers import parse_container_number
from simulators.load import LoadPlan, load_container_number, run_load
from tests.conftest import start_collector


def test_load_container_numbers_valid_and_distinct():
    numbers = [load_container_number(index) for index in range(500)]

    assert len(set(numbers)) == 500
    for number in numbers:
        assert parse_container_number(number, repair=False).value == number


@pytest.mark.slow
def test_load_direct_steps_all_receipted(settings, site_id, processes):
    start_collector(processes, site_id, 1)
    plan = LoadPlan(site_id=site_id, devices=2, steps=[(100.0, 1.0), (200.0, 1.0)])

    result = run_load(settings, plan, transport="direct", drain_timeout_s=90)

    assert [step.sent for step in result.steps] == [100, 200]
    assert result.sent == 300
    assert result.receipted == 300
    assert result.unreceipted == 0
    assert result.drained is True
    for device in result.devices:
        assert device.sent == 150
        assert device.last_seq - device.first_seq + 1 == device.sent
        assert device.broker_acked == device.sent


@pytest.mark.slow
def test_load_edge_transport_all_receipted(settings, site_id, processes):
    start_collector(processes, site_id, 1)
    plan = LoadPlan(site_id=site_id, devices=1, steps=[(20.0, 1.0)])

    result = run_load(settings, plan, transport="edge", drain_timeout_s=90)

    assert result.sent == 20
    assert result.receipted == 20
    assert result.devices[0].last_seq == result.devices[0].first_seq + 19
