"""Parsers on their own: EDIFACT envelopes, CUSDEC/CUSRES values, DCSA date-times, 报关单 receipts.

Samples: CUSDEC D96B NZ import and CUSDEC D96B:145050 export header, CUSRES D99B
CARST, D99B UBMREQR, D96B NZ clearance and a minimal D96A CUSRES (public sample
files, source not recorded); DCSA values from dcsaorg/DCSA-OpenAPI tnt/v3/tnt.yaml
and dcsaorg/Conformance-Gateway; receipt codes from zylee19950505/data-interface
(ImpRecInventory.java).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kouan.formats import customs_json, dcsa
from kouan.formats.codeco import map_codeco
from kouan.formats.cusdec import read_cusdec
from kouan.formats.cusres import read_cusres
from kouan.formats.edifact import EdifactError, parse_interchange

FIXTURES = Path(__file__).parent / "fixtures"
SYDNEY = ZoneInfo("Australia/Sydney")


def _interchange(name):
    return parse_interchange((FIXTURES / name).read_text())


def test_edifact_una_release_character_keeps_separator_in_text():
    interchange = parse_interchange("UNA:+.? 'UNH+1+COARRI:D:95B:UN'FTX+AAA+++A?+B?'C'UNT+3+1'")

    (message,) = interchange.messages
    assert message.body[0].text(3) == "A+B'C"
    assert message.sound is True


def test_edifact_cusdec_s1_has_43_segments_and_no_envelope_problem():
    interchange = _interchange("cusdec_nz_import_d96b.edi")

    (message,) = interchange.messages
    assert len(message.segments) == 43
    assert interchange.all_problems() == []
    assert interchange.sender == "00009908C"


def test_cusdec_s1_values():
    declaration = read_cusdec(
        _interchange("cusdec_nz_import_d96b.edi").messages[0], ZoneInfo("Pacific/Auckland")
    )

    assert declaration.number == "{2}"
    assert declaration.tariff_codes == ["5601210000G"]
    assert declaration.gross_weight_kg == 250.0
    assert declaration.locations[:3] == [("9", "AUSYD"), ("11", "NZAKL"), ("41", "NZAKL")]


def test_cusdec_s2_reads_five_locations_first_17():
    interchange = _interchange("cusdec_export_header_d96b.edi")
    declaration = read_cusdec(interchange.messages[0], ZoneInfo("Europe/Rome"))

    assert len(declaration.locations) == 5
    assert declaration.locations[0] == ("17", "IT044100")
    assert interchange.syntax == "UNOC"


def test_cusdec_s2_truncated_message_reported_by_segment():
    (problem,) = _interchange("cusdec_export_header_d96b.edi").all_problems()

    assert problem.code == "missing_unt"
    assert problem.segment == 12
    assert problem.message_ref == "EDIFACT"


def test_cusres_s3_status_dclallowed_kept_but_not_mapped():
    response = read_cusres(_interchange("cusres_au_carst.edi").messages[0], SYDNEY)

    assert response.status_text == "DCLALLOWED"
    assert response.lifecycle is None


def test_cusres_s4_held_despite_wrong_unt_count():
    message = _interchange("cusres_au_carst.edi").messages[1]
    response = read_cusres(message, SYDNEY)

    assert response.lifecycle == "held"
    assert message.problems[0].code == "segment_count_mismatch"
    assert message.problems[0].detail == "UNT states 35 segments but message 000002 has 5 (UNH..UNT)"


def test_cusres_20_digit_timestamp_read_to_microseconds_in_authority_zone():
    response = read_cusres(_interchange("cusres_au_carst.edi").messages[0], SYDNEY)

    assert response.issued_at == datetime(2005, 11, 2, 14, 7, 6, 724348, tzinfo=SYDNEY)
    assert response.issued_at.utcoffset() == timedelta(hours=11)


def test_cusres_s5_links_container_through_rff_aaq():
    response = read_cusres(_interchange("cusres_au_underbond.edi").messages[0], SYDNEY)

    assert response.containers == ["TRCU3382910"]
    assert response.document_code == "961:UBMREQR"


def test_cusres_s6_clearance_with_maf_hold():
    response = read_cusres(_interchange("cusres_nz_clearance.edi").messages[0], ZoneInfo("Pacific/Auckland"))

    assert response.reference == "19369111"
    assert response.status_text == "CLR"
    assert response.lifecycle == "released"
    assert response.other_holds == ["MAF"]


def test_cusres_s7_minimal_has_no_status_and_unknown_processing():
    response = read_cusres(_interchange("cusres_minimal.edi").messages[0], SYDNEY)

    assert response.status_text is None
    assert response.lifecycle is None
    assert response.processing == "unknown"


def test_edifact_rejects_text_that_is_not_edifact():
    with pytest.raises(EdifactError, match="starts with"):
        parse_interchange("<?xml version='1.0'?>")


def test_edifact_unterminated_last_segment_keeps_earlier_messages():
    interchange = parse_interchange("UNH+1+CODECO:D:95B:UN'BGM+34'UNT+3+1'UNH+2+CODECO:D:95B:UN'BGM+3")

    first, second = interchange.messages
    assert first.sound is True
    assert second.problems[-1].code == "syntax_error"


def test_edifact_unt_reference_mismatch_reported():
    (message,) = parse_interchange("UNH+1+CODECO:D:95B:UN'UNT+2+9'").messages

    assert [problem.code for problem in message.problems] == ["control_reference_mismatch"]


def test_dcsa_event_code_alias_and_unknown_spelling():
    document = dcsa.parse_document(
        [
            {
                "eventID": "a",
                "eventUpdatedDateTime": "2026-01-20T14:20:00Z",
                "eventDateTime": "2026-01-20T14:15:00Z",
                "eventClassification": {
                    "eventType": "EQUIPMENT",
                    "eventClassifier": "ACTUAL",
                    "equipmentEventType": "DISCHARGED",
                },
                "equipmentDetails": {"equipmentReference": "APZU4812090"},
            },
            {
                "eventID": "b",
                "eventUpdatedDateTime": "2026-01-20T14:20:00Z",
                "eventDateTime": "2026-01-20T14:15:00Z",
                "eventClassification": {
                    "eventType": "EQUIPMENT",
                    "eventClassifier": "ACTUAL",
                    "equipmentEventType": "GATEIN",
                },
                "equipmentDetails": {"equipmentReference": "APZU4812090"},
            },
        ],
        now=datetime(2026, 1, 21, tzinfo=UTC),
    )

    assert document.moves[0][1]["event_code"] == "DISC"
    assert [str(problem) for problem in document.problems] == [
        "event 1 (b), field equipmentEventTypeCode: "
        "'GATEIN' is not a DCSA equipment event code or a known alias"
    ]


def test_dcsa_offset_kept_from_the_event_not_the_port():
    moment = dcsa.parse_datetime("2019-11-12T07:41:00+08:30", "eventDateTime")

    assert moment.utcoffset() == timedelta(hours=8, minutes=30)
    assert moment.astimezone(UTC) == datetime(2019, 11, 11, 23, 11, tzinfo=UTC)


def test_dcsa_date_without_offset_rejected():
    with pytest.raises(ValueError, match="eventDateTime|RFC 3339"):
        dcsa.parse_datetime("2019-11-12T07:41:00", "eventDateTime")


def test_receipt_return_time_is_china_time_with_milliseconds():
    moment = customs_json.return_time("20240315123045123")

    assert moment == datetime(2024, 3, 15, 12, 30, 45, 123000, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize(
    ("code", "lifecycle"),
    [
        ("800", "released"),
        ("899", "released"),
        ("500", "inspection_ordered"),
        ("501", "held"),
        ("599", "held"),
        ("700", "held"),
        ("100", "rejected"),
        ("-1", None),
        ("120", None),
    ],
)
def test_receipt_codes_map_to_lifecycle(code, lifecycle):
    receipt = customs_json.read_receipt(
        {"DecReceipt": {"EntryId": "224820241000012345", "ReturnStatus": code}}
    )

    assert receipt.lifecycle == lifecycle


def test_coarri_two_messages_match_their_unt_counts():
    interchange = _interchange("coarri_genoa_d95b.edi")

    first, second = interchange.messages
    assert (first.reference, len(first.segments)) == ("1452515553811", 33)
    assert (second.reference, len(second.segments)) == ("1452515553819", 237)
    assert interchange.all_problems() == []
    assert interchange.prepared == "160204:1728"


@pytest.mark.parametrize(
    ("text", "lifecycle"),
    [
        ("CONSOLIDATED STATUS:FOR EXAMINATION", "inspection_ordered"),
        ("CONSOLIDATED STATUS:REJECTED", "rejected"),
        ("CONSOLIDATED STATUS:RELEASED", "released"),
        ("CUSTOMS HOLD", "held"),
    ],
)
def test_cusres_status_text_maps_to_lifecycle(text, lifecycle):
    message = parse_interchange(f"UNH+1+CUSRES:D:99B:UN'FTX+AHN+++{text}'UNT+3+1'").messages[0]

    assert read_cusres(message, SYDNEY).lifecycle == lifecycle


def test_codeco_bad_weight_fails_only_that_container():
    interchange = parse_interchange(
        "UNH+1+CODECO:D:95B:UN'BGM+34+X+9'"
        "EQD+CN+CCLU4214635+42R0'DTM+7:200806271010:203'MEA+AAE+G+KGM:27,0'"
        "EQD+CN+CSQU3054383+42R0'DTM+7:200806271011:203'UNT+8+1'"
    )
    result = map_codeco(interchange.messages[0], interchange, ZoneInfo("UTC"))

    assert [payload["container_number"]["raw"] for _, payload in result.moves] == ["CSQU3054383"]
    assert [str(problem) for problem in result.problems] == [
        "invalid_value at segment 5 (MEA), segment 5 of message 1: weight '27,0' KGM is not a number"
    ]
