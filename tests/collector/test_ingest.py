"""The real ingest path: device -> Mosquitto -> collector -> TimescaleDB -> receipt.

Identifier verdicts use public vectors: ISO 6346 numbers from python-stdnum
(tests/test_iso6346.doctest), validator.js (test/validators/isISO6346.test.js) and
bezborodow/iso6346py (tests.py); OCR confusions as reported in PaddleOCR #452 and
mlkit #254; seals from DCSA tnt/v3 examples and the php-edifact D95B COARRI sample;
plates from the GA 36-2018 rules and the validators compared in public code.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    passage,
    quarantine_rows,
    signed_event,
    start_collector,
    stored_count,
    wait_for,
)

CONTAINER_CASES = [
    # raw read, stored value, valid, corrected, error code
    ("CSQU3054383", "CSQU3054383", True, False, None),
    ("csqu3054383", "CSQU3054383", True, False, None),
    (" ZEPU-003725 [5]", "ZEPU0037255", True, False, None),
    ("GYOU4047990", "GYOU4047990", True, False, None),  # remainder 10 -> 0
    ("TGHU7599330", "TGHU7599330", True, False, None),  # genuine remainder 0
    ("DDDU5010600", "DDDU5010600", True, False, None),  # remainder 10 -> 0
    ("CSQU3O54383", "CSQU3054383", True, True, None),  # O read for 0 in the serial
    ("C5QU3054383", "CSQU3054383", True, True, None),  # 5 read for S in the owner code
    ("GYOU4O4799O", "GYOU4047990", True, True, None),
    ("CSQU3054384", None, False, False, "checksum"),
    ("APZU3789871", None, False, False, "checksum"),
    ("SRGU2127325", None, False, False, "checksum"),
    ("CSQU3054B83", None, False, False, "checksum"),  # repair would fail its check digit
    ("CSQU305438", None, False, False, "length"),
    ("TBJA7176445", None, False, False, "category"),
    ("CSQU3054383XXX", None, False, False, "length"),
    # Category letters: J and Z are ISO 6346 categories; R and I are not (DCSA tnt/v3
    # example APNR7744962, smart-data-models EdiCodeco example TESI1120274).
    ("ECMJ4657499", "ECMJ4657499", True, False, None),
    ("ECMJ4657496", None, False, False, "checksum"),
    ("QJRZ123456", None, False, False, "length"),
    ("APNR7744962", None, False, False, "category"),
    ("TESI1120274", None, False, False, "category"),
]


@pytest.fixture
def lane(site_id, make_device, processes):
    identity = make_device(site_id, "IN01")
    start_collector(processes, site_id, 1)
    return identity


def _derived(db, device_id, seq):
    row = db.execute(
        "SELECT derived, container_numbers FROM events WHERE device_id = %s AND seq = %s", (device_id, seq)
    ).fetchone()
    return row


def test_container_reads_stored_with_verdicts(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    for seq, (raw, *_rest) in enumerate(CONTAINER_CASES, start=1):
        publisher.publish(topic, signed_event(lane, stack.home, seq, passage(raw, passage_id=f"P{seq}")))

    wait_for(lambda: stored_count(db, lane.device_id) == len(CONTAINER_CASES))
    for seq, (raw, value, valid, corrected, error) in enumerate(CONTAINER_CASES, start=1):
        derived, numbers = _derived(db, lane.device_id, seq)
        record = derived["containers"][0]
        assert record["raw"] == raw, raw
        assert record["value"] == value, raw
        assert record["valid"] is valid, raw
        assert record["corrected"] is corrected, raw
        assert record.get("error") == error, raw
        assert numbers == ([value] if value else []), raw
    assert quarantine_rows(db, lane.device_id) == []


def test_invalid_container_read_raises_flag_not_visit(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    publisher.publish(topic, signed_event(lane, stack.home, 1, passage("CSQU3054384")))

    wait_for(lambda: stored_count(db, lane.device_id) == 1)
    visits = db.execute(
        "SELECT count(*) FROM container_visits WHERE site_id = %s", (lane.site_id,)
    ).fetchone()
    assert visits[0] == 0


SEAL_CASES = [
    # raw, stored value, placeholder, too long
    ("086588", "086588", False, False),  # leading zero kept
    ("  H53175 ", "H53175", False, False),
    ("SI", "SI", True, False),  # a yes-flag where a number belongs
    ("string", "string", True, False),
    ("SEALEQUNO001", "SEALEQUNO001", False, False),
    ("ABCDEFGHIJ1234567", "ABCDEFGHIJ1234567", False, True),
]


def test_seal_reads_kept_as_strings(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    seals = tuple(raw for raw, *_ in SEAL_CASES)
    publisher.publish(topic, signed_event(lane, stack.home, 1, passage("CSQU3054383", seals=seals)))

    wait_for(lambda: stored_count(db, lane.device_id) == 1)
    derived, _ = _derived(db, lane.device_id, 1)
    records = derived["containers"][0]["seals"]
    assert len(records) == len(SEAL_CASES)
    for record, (raw, value, placeholder, too_long) in zip(records, SEAL_CASES, strict=True):
        assert record["raw"] == raw
        assert record["value"] == value
        assert record["placeholder"] is placeholder, raw
        assert record["too_long"] is too_long, raw
    visit_seals = db.execute(
        "SELECT seal_numbers FROM container_visits WHERE site_id = %s AND container_number = 'CSQU3054383'",
        (lane.site_id,),
    ).fetchone()[0]
    assert "086588" in visit_seals
    assert "86588" not in visit_seals


PLATE_CASES = [
    # raw, stored value, kind, valid
    ("沪A12345", "沪A12345", "ordinary", True),
    ("粤B·D12345", "粤BD12345", "new_energy_small", True),
    ("粤B12345D", "粤B12345D", "new_energy_large", True),
    ("沪A1234挂", "沪A1234挂", "trailer", True),
    ("京AE12345", "京AE12345", "new_energy_small", False),  # E is not a D/F energy letter
    ("川A123456", "川A123456", None, False),
]


def test_plate_reads_classified_never_dropped(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    for seq, (raw, *_rest) in enumerate(PLATE_CASES, start=1):
        publisher.publish(
            topic,
            signed_event(lane, stack.home, seq, passage("CSQU3054383", plate=raw, passage_id=f"P{seq}")),
        )

    wait_for(lambda: stored_count(db, lane.device_id) == len(PLATE_CASES))
    for seq, (raw, value, kind, valid) in enumerate(PLATE_CASES, start=1):
        derived, _ = _derived(db, lane.device_id, seq)
        plate = derived["tractor_plate"]
        assert plate["raw"] == raw
        assert plate["value"] == value, raw
        assert plate["valid"] is valid, raw
        if kind is not None:
            assert plate["kind"] == kind, raw


DECLARATION_CASES = [
    ("224820241000012345", "224820241000012345", True),
    ("2248 2024 1 000012345", "224820241000012345", True),
    ("090120260000091377", "090120260000091377", True),  # leading zero kept
    ("224820242000012345", None, False),  # position 9 is neither 0 nor 1
    ("2248202410000123O5", None, False),
]


def test_declaration_number_on_passage_normalised(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    for seq, (raw, *_rest) in enumerate(DECLARATION_CASES, start=1):
        body = passage("CSQU3054383", declaration=raw, passage_id=f"P{seq}")
        publisher.publish(topic, signed_event(lane, stack.home, seq, body))

    wait_for(lambda: stored_count(db, lane.device_id) == len(DECLARATION_CASES))
    for seq, (raw, value, valid) in enumerate(DECLARATION_CASES, start=1):
        derived, _ = _derived(db, lane.device_id, seq)
        assert derived["declaration"]["value"] == value, raw
        assert derived["declaration"]["valid"] is valid, raw


def test_redelivery_stored_once_and_receipted(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    receipts: list[dict] = []
    publisher.client.on_message = lambda client, userdata, message: receipts.append(
        json.loads(message.payload)
    )
    publisher.client.subscribe(f"kouan/v1/{lane.site_id}/{lane.device_id}/receipts", qos=1)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    events = [
        signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        for seq in range(1, 6)
    ]

    for payload in events + events:
        publisher.publish(topic, payload)

    wait_for(lambda: sum(len(receipt["seqs"]) for receipt in receipts) >= 10)
    assert stored_count(db, lane.device_id) == 5
    receipted = sorted(seq for receipt in receipts for seq in receipt["seqs"])
    assert receipted == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quarantine_rows(db, lane.device_id) == []


def test_malformed_message_quarantined_later_stored(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    publisher.publish(topic, signed_event(lane, stack.home, 1, passage("CSQU3054383", passage_id="P1")))
    publisher.publish(topic, b"{not json")
    publisher.publish(topic, signed_event(lane, stack.home, 2, {"passage_id": "P2", "lane_id": "IN01"}))
    publisher.publish(topic, signed_event(lane, stack.home, 3, passage("TCNU7200794", passage_id="P3")))

    wait_for(lambda: stored_count(db, lane.device_id) == 2)
    wait_for(lambda: len(quarantine_rows(db, lane.device_id)) == 2)
    codes = [code for code, _ in quarantine_rows(db, lane.device_id)]
    assert codes == ["malformed_json", "invalid_payload"]
    raw = db.execute(
        "SELECT raw FROM quarantine WHERE client_device = %s AND reason_code = 'malformed_json'",
        (lane.device_id,),
    ).fetchone()[0]
    assert bytes(raw) == b"{not json"
    stored = db.execute(
        "SELECT seq FROM events WHERE device_id = %s ORDER BY seq", (lane.device_id,)
    ).fetchall()
    assert [seq for (seq,) in stored] == [1, 3]


def test_envelope_stored_as_sent_in_each_encoding(stack, db, lane, raw_publisher):
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{lane.site_id}/{lane.device_id}/events"
    plain = signed_event(lane, stack.home, 1, passage("CSQU3054383", passage_id="P1", plate="沪A12345"))
    with_bom = b"\xef\xbb\xbf" + signed_event(lane, stack.home, 2, passage("CSQU3054383", passage_id="P2"))
    wide = (
        signed_event(lane, stack.home, 3, passage("CSQU3054383", passage_id="P3")).decode().encode("utf-16")
    )

    for payload in (plain, with_bom, wide):
        publisher.publish(topic, payload)

    wait_for(lambda: stored_count(db, lane.device_id) == 3)
    rows = db.execute(
        "SELECT seq, envelope FROM events WHERE device_id = %s ORDER BY seq", (lane.device_id,)
    ).fetchall()
    assert rows[0] == (1, json.loads(plain))
    assert rows[0][1]["payload"]["tractor_plate"]["raw"] == "沪A12345"
    assert rows[1] == (2, json.loads(with_bom))
    assert rows[2] == (3, json.loads(wide))
    assert quarantine_rows(db, lane.device_id) == []
