"""GET /api/v1/containers/{number}/dcsa-events on events stored through the real ingest path."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security.accounts import create_api_key
from api.settings import ApiSettings
from kouan.formats import dcsa
from kouan.formats.declarations import apply_response, store_declaration


@pytest.fixture(scope="module")
def client(stack) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(rate_limit_per_minute=100_000))) as test_client:
        yield test_client


@pytest.fixture
def headers(stack, site_id):
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        key = create_api_key(
            conn, f"dcsa-{site_id}-{os.getpid()}", "customs_officer", [site_id], actor="test"
        )
    return {"X-API-Key": key, "Accept-Language": "en"}


def test_export_gives_current_version_of_corrected_event(feed_rig, client, headers):
    feed_rig.drop("dcsa_v3_producer_equipment.json")
    feed_rig.drop("dcsa_v3_producer_equipment_update.json")

    response = client.get("/api/v1/containers/APZU4812090/dcsa-events", headers=headers)

    assert response.status_code == 200
    (event,) = response.json()
    assert event["payload"]["equipmentEventTypeCode"] == "LOAD"
    assert event["payload"]["eventDateTime"] == "2026-01-20T14:16:00+00:00"
    assert event["payload"]["seals"] == [{"number": "133534", "source": "CUS", "type": "WIR"}]
    assert event["payload"]["emptyIndicatorCode"] == "LADEN"


def test_export_finds_non_iso_equipment_reference(feed_rig, client, headers):
    feed_rig.drop("dcsa_v3_openapi_events.json")

    response = client.get("/api/v1/containers/APNR7744962/dcsa-events", headers=headers)

    (event,) = response.json()
    assert event["payload"]["equipmentEventTypeCode"] == "PICK"
    assert event["payload"]["emptyIndicatorCode"] == "EMPTY"
    assert event["payload"]["eventDateTime"] == "2018-03-18T16:36:00+00:00"


def test_export_codeco_gate_in_and_customs_release(feed_rig, client, headers, db, site_id):
    db.execute("DELETE FROM declarations WHERE declaration_number = '224820261000077001'")
    feed_rig.feed.timezone = "Australia/Sydney"
    feed_rig.drop("codeco_sydney_gate_in.edi")
    store_declaration(
        db,
        "224820261000077001",
        {"site_id": site_id, "containers": [{"container_number": "CCLU4214635", "seal_numbers": ["88200"]}]},
    )
    apply_response(
        db, "224820261000077001", "released", [], source_format="CUSRES", message_ref="T1", document={}
    )

    events = client.get("/api/v1/containers/CCLU4214635/dcsa-events", headers=headers).json()

    assert [event["payload"]["equipmentEventTypeCode"] for event in events] == ["GTIN", "CUSR"]
    assert events[0]["payload"]["eventDateTime"] == "2008-06-27T00:10:00+00:00"
    assert events[0]["payload"]["ISOEquipmentCode"] == "42R0"
    assert events[1]["payload"]["relatedDocumentReferences"] == [
        {"type": "CCD", "value": "224820261000077001"}
    ]


def test_export_unknown_container_is_404(client, headers):
    response = client.get("/api/v1/containers/CSQU3054383/dcsa-events", headers=headers)

    assert response.status_code == 404


def test_export_rejects_reference_that_is_neither_iso_nor_alphanumeric(client, headers):
    response = client.get("/api/v1/containers/AB-CD/dcsa-events", headers=headers)

    assert response.status_code == 422


def test_export_reads_back_through_the_dcsa_reader(feed_rig, client, headers):
    feed_rig.drop("dcsa_v3_gate_inspection_release.json")

    exported = client.get("/api/v1/containers/CBHU9515082/dcsa-events", headers=headers).json()
    document = dcsa.parse_document(exported)

    assert document.problems == []
    assert [payload["event_code"] for _, payload in document.moves] == ["GTIN", "INSP", "CUSR", "GTOT"]
    assert document.moves[3][1]["seals"] == [
        {"raw": "A05803", "source": "tos", "party": "SHI", "seal_type": "BLT"},
        {"raw": "CN2024000124", "source": "tos", "party": "CUS", "seal_type": "WIR"},
    ]


def test_codeco_replacement_replaces_and_cancellation_removes(feed_rig, client, headers, site_id):
    feed_rig.drop("codeco_gate_in_original.edi")
    feed_rig.drop("codeco_gate_in_replacement.edi")
    replaced = client.get("/api/v1/containers/CBHU9515082/dcsa-events", headers=headers).json()
    feed_rig.drop("codeco_gate_in_cancellation.edi")
    cancelled = client.get("/api/v1/containers/CBHU9515082/dcsa-events", headers=headers).status_code

    original, replacement, cancellation = feed_rig.events()
    versions = feed_rig.db.execute(
        """
        SELECT event_id, supersedes_event_id FROM equipment_event_versions
        WHERE site_id = %s ORDER BY version_at
        """,
        (site_id,),
    ).fetchall()
    assert [event["payload"]["seals"] for event in replaced] == [[{"number": "A05813", "source": "SHI"}]]
    assert versions == [
        (original["event_id"], None),
        (replacement["event_id"], original["event_id"]),
        (cancellation["event_id"], replacement["event_id"]),
    ]
    assert cancelled == 404
