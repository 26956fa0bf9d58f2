"""Declarations written through the API's service layer validate their identifiers.

Customs numbers follow the 18-digit layout of the 报关单填制规范 (district, year,
import/export flag, sequence); credit codes are GB 32100 vectors from python-stdnum
(tests/test_cn_uscc.doctest) plus N/Y/A-first codes that GB 32100 allows.
"""

from __future__ import annotations

import zlib

import pytest

from api.declarations import service
from api.declarations.schemas import DeclarationPut
from api.errors import ApiError
from api.security.auth import Principal


def _body(site_id: str, **overrides) -> DeclarationPut:
    values = {
        "site_id": site_id,
        "containers": [{"container_number": "CSQU3054383", "seal_numbers": ["086588"]}],
        **overrides,
    }
    return DeclarationPut.model_validate(values)


def _integrator(site_id: str) -> Principal:
    return Principal("api_key", "identifier-test", "integrator", frozenset({site_id}))


@pytest.mark.parametrize(
    ("raw", "stored", "district", "direction"),
    [
        ("224820241000012345", "224820241000012345", "2248", "import"),
        ("2248 2024 1 000012346", "224820241000012346", "2248", "import"),
        ("090120260000091377", "090120260000091377", "0901", "export"),
        ("310420260000742108", "310420260000742108", "3104", "export"),
    ],
)
def test_declaration_number_normalised(db, site_id, raw, stored, district, direction):
    service.put_declaration(db, _integrator(site_id), raw, _body(site_id))

    declaration = service.get_declaration(db, _integrator(site_id), stored)
    assert declaration["declaration_number"] == stored
    assert declaration["customs_district"] == district
    assert declaration["direction"] == direction


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("22482024200001234", "length"),
        ("224820242000012345", "import_export_flag"),
        ("2248202410000123O5", "format"),
        ("224810001", "length"),
    ],
)
def test_invalid_declaration_number_rejected(db, site_id, raw, problem):
    with pytest.raises(ApiError) as caught:
        service.put_declaration(db, _integrator(site_id), raw, _body(site_id))

    assert caught.value.status_code == 422
    assert caught.value.code == "invalid_declaration_number"
    assert caught.value.details[0]["problem"] == problem
    assert raw.replace(" ", "") in caught.value.message_en or raw in caught.value.message_en


@pytest.mark.parametrize(
    "code",
    [
        "91110000600037341L",
        "9144030071526726XG",
        "91310115MA1K3BTP2B",
        "911522010783762860",  # sum mod 31 == 0, check character 0
        "92340604MA2PENA300",
        "N2340602MA2PBQAH71",  # registering authority N, allowed by GB 32100
        "Y1110000600037341Y",
    ],
)
def test_valid_credit_code_accepted(db, site_id, code):
    # One number per site: a declaration stored for an earlier test's site is not this
    # integrator's to replace.
    number = f"2248202410{zlib.crc32(site_id.encode()) % 10**8:08d}"
    service.put_declaration(db, _integrator(site_id), number, _body(site_id, consignee_code=code))

    assert service.get_declaration(db, _integrator(site_id), number)["consignee_code"] == code


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("91110000600037341N", "checksum"),
        ("9111000060003IOZSV", "format"),
        ("12345", "length"),
    ],
)
def test_invalid_credit_code_rejected(db, site_id, code, problem):
    with pytest.raises(ApiError) as caught:
        service.put_declaration(
            db, _integrator(site_id), "224820241000054322", _body(site_id, consignee_code=code)
        )

    assert caught.value.code == "invalid_consignee_code"
    assert caught.value.details[0]["problem"] == problem


def test_declaration_container_checked_strictly(db, site_id):
    body = _body(site_id, containers=[{"container_number": "CSQU3O54383"}])

    with pytest.raises(ApiError) as caught:
        service.put_declaration(db, _integrator(site_id), "224820241000054323", body)

    assert caught.value.code == "invalid_container_number"
    assert caught.value.details[0]["problem"] == "format"


def test_same_declaration_twice_changes_nothing(db, site_id):
    number = "224820241000054324"
    first = service.put_declaration(db, _integrator(site_id), number, _body(site_id))
    second = service.put_declaration(db, _integrator(site_id), number, _body(site_id))

    assert first == (True, 1)
    assert second == (False, 1)
    rows = db.execute("SELECT count(*) FROM declarations WHERE declaration_number = %s", (number,))
    assert rows.fetchone()[0] == 1


def test_status_change_bumps_version(db, site_id):
    number = "224820241000054325"
    service.put_declaration(db, _integrator(site_id), number, _body(site_id))
    changed = service.put_declaration(db, _integrator(site_id), number, _body(site_id, status="released"))

    assert changed == (True, 2)
    assert service.get_declaration(db, _integrator(site_id), number)["status"] == "released"


def test_seal_leading_zero_kept(db, site_id):
    number = "224820241000054326"
    service.put_declaration(db, _integrator(site_id), number, _body(site_id))

    container = service.get_declaration(db, _integrator(site_id), number)["containers"][0]
    assert container["seal_numbers"] == ["086588"]
