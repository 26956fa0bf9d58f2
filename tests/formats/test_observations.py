"""Which terminal-reported moves correlation sees as gate passages (no I/O)."""

from __future__ import annotations

import uuid

import pytest

from collector.ingest import observations_of
from kouan import reads
from kouan.contract import Envelope, EquipmentEvent


def _observations(event_code: str, classifier: str = "ACT", function: str = "9"):
    payload = {
        "event_code": event_code,
        "classifier": classifier,
        "container_number": {"raw": "CCLU4214635", "source": "tos"},
        "seals": [{"raw": "88200", "party": "SH"}, {"raw": "SI", "party": "CA"}],
        "vgm_kg": 27000.0,
        "truck_plate": {"raw": "沪A12345", "source": "tos"},
        "source": {"format": "CODECO", "function": function},
    }
    envelope = Envelope.model_validate(
        {
            "contract_version": 1,
            "event_id": str(uuid.uuid4()),
            "device_id": "S1-TOS",
            "site_id": "S1",
            "seq": 1,
            "kind": "equipment.event",
            "occurred_at": "2008-06-27T10:10:00+10:00",
            "recorded_at": "2008-06-27T10:10:00+10:00",
            "sent_at": "2008-06-27T10:10:00+10:00",
            "payload": payload,
            "signature": "x",
        }
    )
    typed = envelope.typed_payload()
    assert isinstance(typed, EquipmentEvent)
    return observations_of(envelope, typed, reads.derive(typed))


def test_gate_in_report_is_an_entry_passage():
    observation = _observations("GTIN")["CCLU4214635"]

    assert observation.kind == "gate.passage"
    assert observation.direction == "in"
    assert observation.seal_numbers == ("88200",)
    assert observation.gross_weight_kg == 27000.0
    assert observation.truck_plate == "沪A12345"


@pytest.mark.parametrize(
    ("event_code", "classifier", "function"),
    [
        ("GTIN", "EST", "9"),
        ("GTOT", "PLN", "9"),
        ("GTIN", "ACT", "1"),
        ("LOAD", "ACT", "9"),
        ("CUSR", "ACT", "9"),
    ],
)
def test_non_gate_or_not_actual_move_gives_no_observation(event_code, classifier, function):
    assert _observations(event_code, classifier, function) == {}
