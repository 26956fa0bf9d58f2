"""CUSDEC, CUSRES and 报关单 JSON stored through the declaration service, checked in the database.

The CUSRES shapes follow public samples (AU ICS cargo status CARST, NZ clearance
with a MAF biosecurity hold); the Kouan declaration numbers, credit code placement
and containers are constructed test values (containers from the php-edifact D95B
COARRI sample, credit code from python-stdnum's tests/test_cn_uscc.doctest).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kouan.formats.customs_import import import_edifact, import_json

FIXTURES = Path(__file__).parent / "fixtures"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NUMBERS = (
    "224820241000012345",
    "224820241000012346",
    "224820241000012347",
    "224820241000012348",
    "224820240000012349",
)


@pytest.fixture
def clean_numbers(db):
    """Declaration numbers are global; each test starts without the fixture numbers."""
    db.execute("DELETE FROM declarations WHERE declaration_number = ANY(%s)", (list(NUMBERS),))
    db.execute("DELETE FROM customs_responses WHERE declaration_number = ANY(%s)", (list(NUMBERS),))


def _declaration(db, number):
    return db.execute(
        """
        SELECT site_id, status, other_holds, consignee_code, declared_at, version
        FROM declarations WHERE declaration_number = %s
        """,
        (number,),
    ).fetchone()


def _containers(db, number):
    return db.execute(
        """
        SELECT container_number, size_type, seal_numbers, gross_weight_kg FROM declaration_containers
        WHERE declaration_number = %s ORDER BY container_number
        """,
        (number,),
    ).fetchall()


def _import_cusdec(db, site_id):
    return import_edifact(db, (FIXTURES / "cusdec_kouan_import.edi").read_bytes(), site_id, SHANGHAI)


def test_cusdec_stores_declaration_with_containers_seals_weights(db, site_id, clean_numbers):
    _import_cusdec(db, site_id)

    site, status, _holds, consignee, declared_at, _version = _declaration(db, "224820241000012345")
    assert site == site_id
    assert status == "declared"
    assert consignee == "91310115MA1K3BTP2B"
    assert declared_at == datetime(2024, 3, 15, 1, 30, tzinfo=UTC)
    assert [
        (number.strip(), size, seals, float(kg))
        for number, size, seals, kg in _containers(db, "224820241000012345")
    ] == [
        ("CBHU6292344", "42G1", ["A05809"], 28500.0),
        ("CBHU9515082", "45G1", ["A05803"], 29450.0),
    ]


def test_cusdec_bad_container_fails_that_message_only(db, site_id, clean_numbers):
    report = _import_cusdec(db, site_id)

    (problem,) = report.problems
    assert problem["message_ref"] == "M2"
    assert problem["code"] == "invalid_container_number"
    assert problem["fields"][0]["value"] == "MAEU5481202"
    assert _declaration(db, "224820241000012346") is None
    assert _declaration(db, "224820241000012347") is not None


def test_cusdec_with_template_placeholders_fails_on_declaration_number(db, site_id, clean_numbers):
    report = import_edifact(db, (FIXTURES / "cusdec_nz_import_d96b.edi").read_bytes(), site_id, SHANGHAI)

    (problem,) = report.problems
    assert problem["code"] == "invalid_document"
    assert problem["field"] == "BGM document number"
    assert "'{2}'" in problem["detail"]
    assert problem["message_ref"] == "{1}"
    assert report.declarations == []


def test_cusres_release_with_other_authority_hold_keeps_hold_open(db, site_id, clean_numbers):
    _import_cusdec(db, site_id)
    report = import_edifact(db, (FIXTURES / "cusres_kouan_responses.edi").read_bytes(), site_id, SHANGHAI)

    _site, status, holds, *_ = _declaration(db, "224820241000012345")
    assert status == "released"
    assert holds == ["MAF"]
    assert report.responses[0].other_holds == ["MAF"]


def test_cusres_held_applied_and_release_with_bad_count_not_applied(db, site_id, clean_numbers):
    _import_cusdec(db, site_id)
    report = import_edifact(db, (FIXTURES / "cusres_kouan_responses.edi").read_bytes(), site_id, SHANGHAI)

    rows = db.execute(
        """
        SELECT message_ref, customs_status, applied_status, applied, reason FROM customs_responses
        WHERE declaration_number = '224820241000012347' ORDER BY response_id
        """
    ).fetchall()
    assert _declaration(db, "224820241000012347")[1] == "held"
    assert rows[0][:4] == ("R2", "held", "held", True)
    assert rows[1][:4] == ("R3", "released", "held", False)
    assert rows[1][4] == "a release from a message with envelope problems is not applied"
    assert [problem["code"] for problem in report.problems] == ["segment_count_mismatch"]


def test_cusres_for_unknown_declaration_is_recorded_and_reported(db, site_id, clean_numbers):
    report = import_edifact(db, (FIXTURES / "cusres_kouan_responses.edi").read_bytes(), site_id, SHANGHAI)

    assert {problem.get("code") for problem in report.problems} >= {"declaration_not_found"}
    stored = db.execute(
        "SELECT applied, reason FROM customs_responses WHERE declaration_number = '224820241000012345'"
    ).fetchall()
    assert stored == [(False, "declaration not stored")]


def test_cusres_sample_entry_number_is_not_a_haiguan_number(db, site_id, clean_numbers):
    report = import_edifact(db, (FIXTURES / "cusres_nz_clearance.edi").read_bytes(), site_id, SHANGHAI)

    (problem,) = report.problems
    assert problem["code"] == "invalid_document"
    assert "19369111" in problem["detail"]


def _baoguandan(**head):
    document = {
        "DecHead": {
            "EntryId": "224820241000012348",
            "IEFlag": "I",
            "CustomMaster": "2248",
            "IEPort": "2248",
            "TradeCoScc": "91310115MA1K3BTP2B",
            "TradeName": "上海新尚实国际贸易有限公司",
            "TrafMode": "2",
            "TrafName": "E.R. TIANAN",
            "IEDate": "20170224",
            "GrossWet": "57950.00000",
            "PackNo": 1142,
        },
        "DecList": [{"GNo": 1, "CodeTS": "5601210000", "GName": "棉制絮胎", "GQty": "54"}],
        "DecContainers": [
            {
                "ContainerId": "CBHU6292344",
                "ContainerMd": "42G1",
                "GoodsContaWt": "28500.00000",
                "SealNo": ["A05809"],
            },
            {
                "ContainerId": "CBHU9515082",
                "ContainerMd": "45G1",
                "GoodsContaWt": "29450.00000",
                "SealNo": "A05803",
            },
        ],
    }
    document["DecHead"].update(head)
    return document


def test_customs_json_stores_declaration(db, site_id, clean_numbers):
    report = import_json(db, json.dumps(_baoguandan()).encode(), site_id)

    assert report.problems == []
    _site, status, _holds, consignee, declared_at, _version = _declaration(db, "224820241000012348")
    assert status == "declared"
    assert consignee == "91310115MA1K3BTP2B"
    assert declared_at == datetime(2017, 2, 23, 16, 0, tzinfo=UTC)
    assert [row[2] for row in _containers(db, "224820241000012348")] == [["A05809"], ["A05803"]]


@pytest.mark.parametrize(
    ("head", "field"),
    [
        ({"EntryId": "22482024100001234"}, "DecHead.EntryId"),
        ({"TradeCoScc": "91110000600037341N"}, "DecHead.TradeCoScc"),
        ({"IEFlag": "E"}, "DecHead.IEFlag"),
        ({"IEDate": "20170230"}, "DecHead.IEDate"),
    ],
)
def test_customs_json_invalid_head_field_named(db, site_id, clean_numbers, head, field):
    report = import_json(db, json.dumps([_baoguandan(**head)]).encode(), site_id)

    (problem,) = report.problems
    assert problem["field"] == field
    assert problem["index"] == 0


def test_customs_json_bad_container_fails_only_that_document(db, site_id, clean_numbers):
    bad = _baoguandan(EntryId="224820240000012349", IEFlag="E")
    bad["DecContainers"][1]["ContainerId"] = "MAEU5481202"
    report = import_json(db, json.dumps([bad, _baoguandan()]).encode(), site_id)

    (problem,) = report.problems
    assert problem["field"] == "DecContainers[1].ContainerId"
    assert _declaration(db, "224820240000012349") is None
    assert _declaration(db, "224820241000012348") is not None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("800", "released"),
        ("899", "released"),
        ("500", "inspection_ordered"),
        ("502", "held"),
        ("100", "cancelled"),
        ("-3", "declared"),
        ("399", "declared"),
    ],
)
def test_customs_json_receipt_moves_lifecycle(db, site_id, clean_numbers, code, status):
    receipt = {
        "DecReceipt": {
            "EntryId": "224820241000012348",
            "ReturnStatus": code,
            "ReturnTime": "20240315123045123",
        }
    }
    report = import_json(db, json.dumps([_baoguandan(), receipt]).encode(), site_id)

    assert report.problems == []
    assert _declaration(db, "224820241000012348")[1] == status


def test_customs_json_release_receipt_with_quarantine_hold_keeps_it(db, site_id, clean_numbers):
    receipt = {"DecReceipt": {"EntryId": "224820241000012348", "ReturnStatus": "800", "OtherHolds": ["检疫"]}}
    import_json(db, json.dumps([_baoguandan(), receipt]).encode(), site_id)

    _site, status, holds, *_ = _declaration(db, "224820241000012348")
    assert status == "released"
    assert holds == ["检疫"]
