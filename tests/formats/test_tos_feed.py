"""Terminal feed files through the real ingest path, checked in the database.

Fixtures are built from the values of public samples: the COARRI D.95B interchange
of php-edifact/edifact (tests/files/D95BCOARRI.edi), the CODECO gate-in examples of
smart-data-models/dataModel.MarineTransport (EdiCodeco/examples/example.json) and a
public C# test (TestProcessCODECOMessage_Ack), the DCSA TNT v3 OpenAPI examples
(dcsaorg/DCSA-OpenAPI tnt/v3/tnt.yaml) and the DCSA Conformance-Gateway TNT
fixtures (tnt-220-response.json, tnt-220-response-wrong-date-times.json,
tnt-300-request-equipment.json).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.conftest import quarantine_rows
from tests.formats.conftest import FIXTURES


def _by_container(events):
    return {event["payload"]["container_number"]["raw"]: event for event in events}


def test_coarri_interchange_stores_21_moves_with_genoa_local_times(feed_rig):
    reports = feed_rig.drop("coarri_genoa_d95b.edi")

    events = feed_rig.events()
    boxes = _by_container(events)
    assert reports[0].problems == []
    assert len(events) == 21
    assert [event["payload"]["event_code"] for event in events].count("DISC") == 2
    assert [event["payload"]["event_code"] for event in events].count("LOAD") == 19
    # DTM+203 201602030913 at Genoa in February is CET (UTC+1).
    assert boxes["FCIU9908030"]["occurred_at"] == datetime(2016, 2, 3, 8, 13, tzinfo=UTC)
    assert boxes["FCIU9908030"]["payload"]["gross_weight_kg"] == 8914.0
    assert boxes["FCIU9908030"]["payload"]["tare_weight_kg"] == 4000.0
    assert boxes["FCIU9908030"]["payload"]["size_type"] == "45G1"
    assert boxes["FCIU9908030"]["payload"]["full_empty"] == "full"
    assert quarantine_rows(feed_rig.db, feed_rig.device_id) == []


def test_coarri_seals_keep_leading_zeros_and_flag_placeholder(feed_rig):
    feed_rig.drop("coarri_genoa_d95b.edi")

    boxes = _by_container(feed_rig.events())
    assert boxes["TTNU4873285"]["payload"]["seals"] == [{"raw": "086588", "source": "tos", "party": "SH"}]
    assert boxes["FSCU8459470"]["derived"]["containers"][0]["seals"][0]["value"] == "1774"
    discharge_seal = boxes["FCIU9908030"]["derived"]["containers"][0]["seals"][0]
    assert discharge_seal["value"] == "SI"
    assert discharge_seal["placeholder"] is True
    assert discharge_seal["party"] == "CA"


def test_coarri_remainder_10_containers_are_valid(feed_rig):
    feed_rig.drop("coarri_genoa_d95b.edi")

    boxes = _by_container(feed_rig.events())
    for number in ("TRLU8132090", "FSCU8710190", "TEMU3412100", "FSCU8459470"):
        assert boxes[number]["container_numbers"] == [number]


def test_coarri_dangerous_goods_box_is_flagged(feed_rig):
    feed_rig.drop("coarri_genoa_d95b.edi")

    boxes = _by_container(feed_rig.events())
    assert "dangerous_goods:8/2735" in boxes["CBHU6411248"]["payload"]["flags"]
    assert boxes["CBHU6411248"]["payload"]["references"] == [{"type": "BN", "value": "9000157870"}]
    assert boxes["CBHU8131755"]["payload"]["references"] == []


def test_coarri_wrong_unt_count_drops_only_that_message(feed_rig):
    reports = feed_rig.drop("coarri_genoa_d95b_broken_count.edi")

    events = feed_rig.events()
    codes = [(problem["code"], problem["segment"], problem["tag"]) for problem in reports[0].problems]
    assert ("segment_count_mismatch", 34, "UNT") in codes
    assert ("message_count_mismatch", 272, "UNZ") in codes
    assert len(events) == 19
    assert {event["payload"]["event_code"] for event in events} == {"LOAD"}


def test_coarri_report_written_beside_processed_file(feed_rig):
    feed_rig.drop("coarri_genoa_d95b_broken_count.edi")

    report = json.loads(
        (feed_rig.feed.drop_dir / "done" / "coarri_genoa_d95b_broken_count.edi.report.json").read_text()
    )
    assert report["events_found"] == 19
    assert report["events_emitted"] == 19
    assert report["problems"][0]["message_ref"] == "1452515553811"
    assert report["problems"][0]["message_segment"] == 33


def test_codeco_huelva_gate_in_takes_values_from_the_edi(feed_rig):
    feed_rig.drop("codeco_huelva_gate_in.edi")

    (event,) = feed_rig.events()
    payload = event["payload"]
    assert payload["event_code"] == "GTIN"
    assert payload["seals"] == [{"raw": "88200", "source": "tos", "party": "SH"}]
    assert payload["vgm_kg"] == 27000.0
    assert payload["truck_plate"]["raw"] == "993NGR"
    assert payload["source"]["function"] == "9"
    # 14:47 at Huelva in August is CEST (UTC+2): 12:47Z, not the 14:47Z of the decoded JSON.
    assert event["occurred_at"] == datetime(2023, 8, 11, 12, 47, tzinfo=UTC)


def test_codeco_non_iso_container_stored_and_flagged(feed_rig):
    feed_rig.drop("codeco_huelva_gate_in.edi")

    (event,) = feed_rig.events()
    assert event["derived"]["equipment_reference"] == "TESI1120274"
    assert event["derived"]["iso6346_valid"] is False
    assert event["derived"]["containers"][0]["error"] is not None
    assert event["container_numbers"] == []


def test_codeco_without_envelope_uses_default_zone(feed_rig):
    feed_rig.feed.timezone = "Australia/Sydney"
    feed_rig.drop("codeco_sydney_gate_in.edi")

    (event,) = feed_rig.events()
    assert event["container_numbers"] == ["CCLU4214635"]
    assert event["payload"]["size_type"] == "42R0"
    assert event["payload"]["location"] == "AUSYD"
    assert event["payload"]["facility"] == "SHCB1"
    # 10:10 at Sydney in June is AEST (UTC+10).
    assert event["occurred_at"] == datetime(2008, 6, 27, 0, 10, tzinfo=UTC)


def test_codeco_gate_in_opens_a_container_visit(feed_rig, site_id):
    feed_rig.feed.timezone = "Australia/Sydney"
    feed_rig.drop("codeco_sydney_gate_in.edi")

    row = feed_rig.db.execute(
        """
        SELECT status, entered_at FROM container_visits
        WHERE site_id = %s AND container_number = 'CCLU4214635'
        """,
        (site_id,),
    ).fetchone()
    assert row is not None
    assert row[1] == datetime(2008, 6, 27, 0, 10, tzinfo=UTC)


def test_dcsa_v3_examples_keep_both_events_sharing_an_event_id(feed_rig):
    reports = feed_rig.drop("dcsa_v3_openapi_events.json")

    events = feed_rig.events()
    codes = [
        (event["payload"]["event_code"], event["payload"]["container_number"]["raw"]) for event in events
    ]
    assert reports[0].notes == ["event 0 skipped: eventType SHIPMENT is not an equipment event"]
    assert codes == [
        ("LOAD", "APZU4812090"),
        ("DROP", "APZU4812090"),
        ("PICK", "APNR7744962"),
        ("LOAD", "APZU4812090"),
    ]
    assert events[0]["occurred_at"] == datetime(2019, 11, 11, 23, 11, tzinfo=UTC)
    assert events[0]["payload"]["seals"] == [
        {"raw": "133534", "source": "tos", "party": "CUS", "seal_type": "WIR"}
    ]


def test_dcsa_non_iso_equipment_reference_stored_and_flagged(feed_rig):
    feed_rig.drop("dcsa_v3_openapi_events.json")

    pick = _by_container(feed_rig.events())["APNR7744962"]
    assert pick["derived"]["iso6346_valid"] is False
    assert pick["derived"]["containers"][0]["error"] == "category"
    assert pick["payload"]["full_empty"] == "empty"


def test_dcsa_wrong_date_times_rejected_by_field_and_others_stored(feed_rig):
    reports = feed_rig.drop("dcsa_v22_wrong_date_times.json")

    problems = [(problem["index"], problem["field"]) for problem in reports[0].problems]
    events = feed_rig.events()
    assert problems == [
        (1, "eventCreatedDateTime"),
        (2, "eventDateTime"),
        (3, "eventCreatedDateTime"),
        (4, "eventDateTime"),
    ]
    assert [event["payload"]["source"]["external_event_id"] for event in events] == [
        "c09-date-0",
        "c09-date-5",
        "c09-date-6",
    ]
    assert events[1]["payload"]["flags"] == ["created_before_actual_event"]
    assert events[2]["payload"]["flags"] == ["created_in_future"]


def test_dcsa_identical_events_with_two_ids_are_two_rows(feed_rig):
    feed_rig.drop("dcsa_v22_conformance_equipment.json")

    events = feed_rig.events()
    assert len(events) == 2
    assert events[0]["derived"]["containers"][0]["seals"][0]["placeholder"] is True


def test_dcsa_loaded_alias_maps_to_load(feed_rig):
    feed_rig.drop("dcsa_v3_producer_equipment.json")

    (event,) = feed_rig.events()
    assert event["payload"]["event_code"] == "LOAD"
    assert event["payload"]["source"]["external_updated_at"] == "2026-01-20T14:20:00+00:00"


def test_dcsa_later_update_replaces_earlier_and_keeps_it(feed_rig, site_id):
    feed_rig.drop("dcsa_v3_producer_equipment.json")
    feed_rig.drop("dcsa_v3_producer_equipment_update.json")

    first, second = feed_rig.events()
    rows = feed_rig.db.execute(
        """
        SELECT event_id, supersedes_event_id, is_current FROM equipment_event_versions
        WHERE site_id = %s ORDER BY version_at
        """,
        (site_id,),
    ).fetchall()
    assert rows == [(first["event_id"], None, False), (second["event_id"], first["event_id"], True)]
    assert second["occurred_at"] == datetime(2026, 1, 20, 14, 16, tzinfo=UTC)


def test_dcsa_earlier_update_arriving_late_does_not_replace(feed_rig, site_id):
    feed_rig.drop("dcsa_v3_producer_equipment_update.json")
    feed_rig.drop("dcsa_v3_producer_equipment.json")

    late_update, late_original = feed_rig.events()
    current = feed_rig.db.execute(
        "SELECT event_id FROM equipment_event_versions WHERE site_id = %s AND is_current", (site_id,)
    ).fetchall()
    assert current == [(late_update["event_id"],)]


def test_unreadable_file_moves_to_failed_with_report(feed_rig, tmp_path):
    (feed_rig.feed.drop_dir / "noise.txt").write_text("hello, not a terminal report")
    reports = feed_rig.feed.poll_once()

    assert reports[0].problems[0]["code"] == "unreadable"
    assert (feed_rig.feed.drop_dir / "failed" / "noise.txt").exists()


def test_codeco_gate_out_with_customs_seal_and_chinese_plate(feed_rig):
    feed_rig.drop("codeco_gate_out_constructed.edi")

    (event,) = feed_rig.events()
    payload = event["payload"]
    assert payload["event_code"] == "GTOT"
    assert payload["seals"][1] == {"raw": "CN2024000123", "source": "tos", "party": "CU"}
    assert event["derived"]["truck_plate"]["value"] == "沪A12345"
    # No zone configured for sender CNSHAYS: the feed's default, Asia/Shanghai.
    assert event["occurred_at"] == datetime(2024, 3, 16, 2, 12, tzinfo=UTC)


def test_dcsa_gate_inspection_release_codes_stored(feed_rig):
    feed_rig.drop("dcsa_v3_gate_inspection_release.json")

    events = feed_rig.events()
    assert [event["payload"]["event_code"] for event in events] == ["GTIN", "INSP", "CUSR", "GTOT"]
    assert [seal["party"] for seal in events[3]["payload"]["seals"]] == ["SHI", "CUS"]
    assert all(event["container_numbers"] == ["CBHU9515082"] for event in events)


def test_feed_resumes_file_after_recorded_progress(feed_rig):
    import hashlib

    data = (FIXTURES / "coarri_genoa_d95b.edi").read_bytes()
    state = {"sha256": hashlib.sha256(data).hexdigest(), "next": 19}
    (feed_rig.feed.drop_dir / ".state" / "coarri_genoa_d95b.edi.json").write_text(json.dumps(state))
    reports = feed_rig.drop("coarri_genoa_d95b.edi")

    boxes = [event["payload"]["container_number"]["raw"] for event in feed_rig.events()]
    assert len(reports[0].seqs) == 2
    assert boxes == ["FSCU5025633", "CAXU3190016"]
    assert not (feed_rig.feed.drop_dir / ".state" / "coarri_genoa_d95b.edi.json").exists()
