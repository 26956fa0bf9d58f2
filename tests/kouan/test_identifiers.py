"""Tests for kouan.identifiers, built from published test vectors.

Check digits and check characters marked "computed" were recomputed independently of
the module under test.
"""

from __future__ import annotations

import pytest

from kouan.identifiers import (
    ContainerNumberError,
    CreditCodeError,
    DeclarationNumberError,
    IdentifierError,
    PlateError,
    SealNumberError,
    iso6346_check_digit,
    parse_container_number,
    parse_credit_code,
    parse_declaration_number,
    parse_plate,
    parse_seal_number,
    uscc_check_character,
)

# --- ISO 6346 container numbers ------------------------------------------------------

# python-stdnum tests/test_iso6346.doctest; validator.js test/validators/isISO6346.test.js;
# bezborodow/iso6346py tests.py; GSTU2232839 from the worked example in the
# fabianogoes/DigitoVerificadorContainer README; RAIU6900114 from the
# solyarisoftware/iso6346 README; KTNU3960093, the horizontally painted number in a
# googlesamples/mlkit text-recognition report.
VALID_CONTAINER_NUMBERS = [
    "CSQU3054383",
    "TCNU7200794",
    "TOLU4734787",
    "HLXU2008419",
    "ECMU4657496",
    "MEDU6246078",
    "YMLU2809976",
    "MRKU0046221",
    "EMCU3811879",
    "OOLU8643084",
    "HJCU1922713",
    "ZEPU0037255",
    "COTU2170823",
    "SLEU4914295",
    "MCCU3083637",
    "MCCU3082728",
    "TIHU5119122",
    "GSTU2232839",
    "RAIU6900114",
    "KTNU3960093",
]

# Weighted sum mod 11 is 10, so the check digit is written 0. validator.js
# isISO6346.test.js ("checksum digit 10 represented as 0"), python-stdnum
# test_iso6346.doctest (GYOU4047990), bezborodow/iso6346py tests.py (DDDU5010600),
# python-stdnum iso6346.py docstring (TASU1170000), and the last four from
# php-edifact tests/files/D95BCOARRI.edi.
REMAINDER_TEN_NUMBERS = [
    "APZU3789870",
    "TEMU1002030",
    "DFSU1704420",
    "CMAU2221480",
    "SEGU5060260",
    "FCIU8939320",
    "TRHU3495670",
    "MEDU3871410",
    "CMAU2184010",
    "TCLU2265970",
    "GYOU4047990",
    "DDDU5010600",
    "TASU1170000",
    "TRLU8132090",
    "FSCU8710190",
    "TEMU3412100",
    "FSCU8459470",
]

# validator.js isISO6346.test.js: the same serials with check digit 1.
REMAINDER_TEN_WRONG_DIGIT = [
    "APZU3789871",
    "TEMU1002031",
    "DFSU1704421",
    "CMAU2221481",
    "SEGU5060261",
]

# Check digit 0 from a genuine remainder of 0, not from the remainder-10 rule (sums
# 4697, 5720, 3366 and 3872, computed). TGHU7599330 is from validator.js.
REMAINDER_ZERO_NUMBERS = ["TGHU7599330", "APZU4812090", "FCIU9908030", "MAGU5591240"]

# (number, expected check digit, printed check digit). python-stdnum, validator.js,
# bezborodow/iso6346py ('ZEPU0037252 raises'), solyarisoftware/iso6346 README
# (RAIU6900115, correct digit 4), and ECMJ4657496 from validator.js with the digit
# for category J computed.
CHECKSUM_FAILURES = [
    ("CSQU3054384", "3", "4"),
    ("OOLU1922713", "8", "3"),
    ("HJCU1922413", "5", "3"),
    ("AFFU5962593", "9", "3"),
    ("ECMJ4657496", "9", "6"),
    ("ZEPU0037252", "5", "2"),
    ("RAIU6900115", "4", "5"),
]

# python-stdnum (CSQU305438), validator.js (FCUI985619, QJRZ123456 without a check
# digit), Lobster data platform docs (7SQU305438), the inputs that validator.js's
# unanchored regex accepted, and the solyarisoftware/iso6346 README (a number and its
# size-type code in one string).
LENGTH_FAILURES = [
    "CSQU305438",
    "FCUI985619",
    "QJRZ123456",
    "7SQU305438",
    "ABCU1234567HELLO",
    "CSQU3054383XXX",
    "hellozZ123456",
    "AB,123456",
    "QJR,123456",
    "CSQ U 305438 3 201G",
    "RAIU 6900114 25U1",
]

# (number, 1-based position of the first wrong character). CSQU3054Z83 is from
# python-stdnum; the other two are constructed test values.
FORMAT_FAILURES = [
    ("CSQU3054Z83", 9),
    ("7SQU3054383", 1),
    ("CSQ,3054383", 4),
]

# (number, category letter). validator.js (TBJA7176445), DCSA-OpenAPI tnt/v3/tnt.yaml
# (APNR7744962), smart-data-models EdiCodeco example (TESI1120274) and
# sameersemna/Container-validator-JS (ATBE1003091, valid under EN 13044).
CATEGORY_FAILURES = [
    ("TBJA7176445", "A"),
    ("APNR7744962", "R"),
    ("TESI1120274", "I"),
    ("ATBE1003091", "E"),
]

# (first 10 characters, check digit) from the sources above.
CHECK_DIGITS = [
    ("CSQU305438", "3"),
    ("ZEPU003725", "5"),
    ("COTU217082", "3"),
    ("SLEU491429", "5"),
    ("MCCU308363", "7"),
    ("MCCU308272", "8"),
    ("DDDU501060", "0"),
    ("TIHU511912", "2"),
    ("GSTU223283", "9"),
    ("TASU117000", "0"),
    ("TGHU759933", "0"),
    ("QJRZ123456", "3"),
    ("ECMJ465749", "9"),
]

# (raw OCR text, repaired number). Constructed test values, each with one repair.
OCR_REPAIRS = [
    ("C5QU3054383", "CSQU3054383"),
    ("CSQU3O54383", "CSQU3054383"),
    ("HLXU2OO8419", "HLXU2008419"),
    ("GYOU4O4799O", "GYOU4047990"),
]


@pytest.mark.parametrize("number", VALID_CONTAINER_NUMBERS)
def test_valid_numbers_parse(number: str) -> None:
    parsed = parse_container_number(number)

    assert parsed.value == number
    assert parsed.raw == number
    assert parsed.corrected is False


@pytest.mark.parametrize("number", REMAINDER_TEN_NUMBERS)
def test_remainder_ten_numbers_validate(number: str) -> None:
    parsed = parse_container_number(number)

    assert parsed.value == number
    assert parsed.corrected is False
    assert iso6346_check_digit(number[:10]) == "0"


@pytest.mark.parametrize("number", REMAINDER_TEN_WRONG_DIGIT)
def test_remainder_ten_digit_one_fails_checksum(number: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number)

    assert caught.value.code == "checksum"
    assert "expected 0, found 1" in caught.value.message_en


@pytest.mark.parametrize("number", REMAINDER_ZERO_NUMBERS)
def test_remainder_zero_numbers_validate(number: str) -> None:
    parsed = parse_container_number(number)

    assert parsed.value == number
    assert iso6346_check_digit(number[:10]) == "0"


@pytest.mark.parametrize("number", REMAINDER_ZERO_NUMBERS)
def test_remainder_zero_digit_one_fails_checksum(number: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number[:10] + "1")

    assert caught.value.code == "checksum"


@pytest.mark.parametrize(("number", "expected", "found"), CHECKSUM_FAILURES)
def test_wrong_check_digit_fails_checksum(number: str, expected: str, found: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number)

    assert caught.value.code == "checksum"
    assert caught.value.value == number
    assert f"expected {expected}, found {found}" in caught.value.message_en
    assert f"应为 {expected}，实为 {found}" in caught.value.message_zh


def test_checksum_error_messages() -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number("CSQU3054384")

    assert caught.value.message_en.startswith(
        "Container number 'CSQU3054384' failed its ISO 6346 check digit: expected 3, found 4."
    )
    assert caught.value.message_zh.startswith("箱号 CSQU3054384 校验位错误：应为 3，实为 4。")
    assert str(caught.value) == caught.value.message_en


def test_container_error_is_value_error() -> None:
    with pytest.raises(ValueError) as caught:
        parse_container_number("CSQU3054384")

    assert isinstance(caught.value, IdentifierError)
    assert isinstance(caught.value, ContainerNumberError)


@pytest.mark.parametrize("number", LENGTH_FAILURES)
def test_wrong_length_fails_length(number: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number)

    assert caught.value.code == "length"
    assert caught.value.value == number


@pytest.mark.parametrize(("number", "position"), FORMAT_FAILURES)
def test_misplaced_character_fails_format(number: str, position: int) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number)

    assert caught.value.code == "format"
    assert f"at position {position}" in caught.value.message_en
    assert f"第 {position} 位" in caught.value.message_zh


@pytest.mark.parametrize(("number", "letter"), CATEGORY_FAILURES)
def test_non_iso_category_fails_category(number: str, letter: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(number)

    assert caught.value.code == "category"
    assert f"category letter {letter!r}" in caught.value.message_en


def test_ilu_category_message_names_en_13044() -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number("ATBE1003091")

    assert "EN 13044" in caught.value.message_en
    assert "EN 13044" in caught.value.message_zh


def test_category_j_number_validates() -> None:
    # validator.js serial ECMJ465749 with the check digit for category J (computed).
    parsed = parse_container_number("ECMJ4657499")

    assert parsed.category == "J"
    assert parsed.corrected is False


def test_category_z_number_validates() -> None:
    # QJRZ123456 from validator.js with its check digit 3 appended (computed).
    parsed = parse_container_number("QJRZ1234563")

    assert parsed.category == "Z"
    assert parsed.check_digit == "3"


@pytest.mark.parametrize("raw", ["", "   ", " - [ ] "])
def test_blank_container_number_fails_empty(raw: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(raw)

    assert caught.value.code == "empty"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("csqu3054383", "CSQU3054383"),  # python-stdnum
        ("Csq u3054383", "CSQU3054383"),  # Lobster data platform docs
        (" ZEPU-003725 [5]", "ZEPU0037255"),  # bezborodow/iso6346py
        ("TASU 117000 0", "TASU1170000"),  # python-stdnum iso6346.py docstring
        ("ZEPU.003725.5", "ZEPU0037255"),
    ],
)
def test_container_number_normalised(raw: str, value: str) -> None:
    parsed = parse_container_number(raw)

    assert parsed.value == value
    assert parsed.raw == raw
    assert parsed.corrected is False


def test_container_number_parts() -> None:
    parsed = parse_container_number("CSQU3054383")

    assert parsed.owner_code == "CSQ"
    assert parsed.category == "U"
    assert parsed.serial == "305438"
    assert parsed.check_digit == "3"


@pytest.mark.parametrize(("first10", "digit"), CHECK_DIGITS)
def test_check_digit_computed(first10: str, digit: str) -> None:
    assert iso6346_check_digit(first10) == digit


def test_check_digit_input_normalised() -> None:
    assert iso6346_check_digit("csqu 305438") == "3"


@pytest.mark.parametrize(
    ("first10", "code"),
    [("CSQU30543", "length"), ("CSQU3054383", "length"), ("CSQU30543Z", "format"), ("", "empty")],
)
def test_check_digit_bad_input_raises(first10: str, code: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        iso6346_check_digit(first10)

    assert caught.value.code == code


@pytest.mark.parametrize(("raw", "value"), OCR_REPAIRS)
def test_ocr_confusion_repaired(raw: str, value: str) -> None:
    parsed = parse_container_number(raw)

    assert parsed.value == value
    assert parsed.raw == raw
    assert parsed.corrected is True


@pytest.mark.parametrize(("raw", "_value"), OCR_REPAIRS)
def test_ocr_repair_disabled_fails_format(raw: str, _value: str) -> None:
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number(raw, repair=False)

    assert caught.value.code == "format"


def test_ocr_repair_failing_check_digit_rejected() -> None:
    # B read as 8 gives CSQU3054883, whose check digit is 7 (computed), not 3.
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number("CSQU3054B83")

    assert caught.value.code == "checksum"
    assert caught.value.value == "CSQU3054B83"
    assert "'CSQU3054883'" in caught.value.message_en
    assert "expected 7, found 3" in caught.value.message_en


def test_unrepairable_number_fails_checksum() -> None:
    # The vertically painted number as transcribed in the same googlesamples/mlkit report.
    # It contains no look-alike character to repair.
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number("SRGU2127325")

    assert caught.value.code == "checksum"
    assert "expected 3, found 5" in caught.value.message_en


def test_repair_to_invalid_category_keeps_format_error() -> None:
    # A 1 in position 4 would be read as I, which is not an ISO 6346 category.
    with pytest.raises(ContainerNumberError) as caught:
        parse_container_number("CSQ13054383")

    assert caught.value.code == "format"
    assert "at position 4" in caught.value.message_en


# --- Seal numbers ----------------------------------------------------------------------

# php-edifact tests/files/D95BCOARRI.edi, DCSA-OpenAPI tnt/v3/tnt.yaml (133534),
# DCSA Conformance-Gateway Seal example (VET123), EdiFabric CargoReport.txt
# (SEALEQUNO001), aleris/ubl-model TransportEquipmentSeal.ts (ACS1234), a carrier
# TNT capture (FJ16648316) and a COARRI from CAP TALBOT (AFZ5046, AHB6615, AFL0243).
SEAL_NUMBERS = [
    "H53175",
    "1566003",
    "1573015",
    "A05809",
    "A05803",
    "6236460",
    "1547186",
    "086588",
    "H323805",
    "086334",
    "027640",
    "6234012",
    "1774",
    "1566180",
    "633514",
    "249774",
    "6878072",
    "017773",
    "618700",
    "133534",
    "VET123",
    "FJ16648316",
    "AFZ5046",
    "AHB6615",
    "AFL0243",
    "SEALEQUNO001",
    "ACS1234",
]

# Placeholders where a seal number belongs: "SI" and "Y" from real COARRI messages,
# "NA" from a CODECO generator, "string" from DCSA Conformance-Gateway tnt-220.
SEAL_PLACEHOLDERS = ["SI", "Y", "N", "NA", "string", "si", "na", "String"]


@pytest.mark.parametrize("seal", SEAL_NUMBERS)
def test_seal_number_kept_verbatim(seal: str) -> None:
    parsed = parse_seal_number(seal)

    assert parsed.value == seal
    assert parsed.raw == seal
    assert parsed.placeholder is False
    assert parsed.too_long is False


@pytest.mark.parametrize("seal", ["086588", "086334", "027640", "017773"])
def test_seal_leading_zeros_kept(seal: str) -> None:
    parsed = parse_seal_number(seal)

    assert parsed.value == seal
    assert parsed.value != seal.lstrip("0")


def test_seals_differing_by_leading_zero_differ() -> None:
    assert parse_seal_number("086588") != parse_seal_number("86588")


def test_seal_number_trimmed() -> None:
    parsed = parse_seal_number("  H53175 \n")

    assert parsed.value == "H53175"
    assert parsed.raw == "  H53175 \n"


@pytest.mark.parametrize("seal", SEAL_PLACEHOLDERS)
def test_seal_placeholder_flagged(seal: str) -> None:
    parsed = parse_seal_number(seal)

    assert parsed.placeholder is True
    assert parsed.value == seal


@pytest.mark.parametrize(
    ("seal", "too_long"),
    [("ABCDEFGHJK12345", False), ("ABCDEFGHJK123456", True), ("SEALEQUNO001", False)],
)
def test_seal_over_dcsa_limit_flagged(seal: str, too_long: bool) -> None:
    assert parse_seal_number(seal).too_long is too_long


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_blank_seal_fails_empty(raw: str) -> None:
    with pytest.raises(SealNumberError) as caught:
        parse_seal_number(raw)

    assert caught.value.code == "empty"
    assert caught.value.value == raw


def test_integer_seal_raises_type_error() -> None:
    with pytest.raises(TypeError):
        parse_seal_number(86588)  # type: ignore[arg-type]


# --- Customs declaration numbers ---------------------------------------------------------

# (number, customs district) from a public OCR regression test for scanned 报关单.
DECLARATION_NUMBERS = [
    ("310120260516523599", "3101"),
    ("310120260516526759", "3101"),
    ("310120260516524559", "3101"),
    ("516620260000491860", "5166"),
    ("310420260000742108", "3104"),
    ("310120260000000044", "3101"),
    ("090120260000091377", "0901"),
    ("090120260000092216", "0901"),
    ("220120260000184102", "2201"),
    ("220120260000000066", "2201"),
    ("420120260000330915", "4201"),
    ("530120260000000055", "5301"),
]


@pytest.mark.parametrize(("number", "district"), DECLARATION_NUMBERS)
def test_export_declaration_parses(number: str, district: str) -> None:
    parsed = parse_declaration_number(number)

    assert parsed.value == number
    assert parsed.customs_district == district
    assert parsed.year == 2026
    assert parsed.direction == "export"
    assert parsed.sequence == number[9:]


def test_import_declaration_parses() -> None:
    # Constructed test value: 2248 洋山港区, 2024, import, sequence 000012345.
    parsed = parse_declaration_number("224820241000012345")

    assert parsed.customs_district == "2248"
    assert parsed.year == 2024
    assert parsed.direction == "import"
    assert parsed.sequence == "000012345"


def test_declaration_with_spaces_accepted() -> None:
    parsed = parse_declaration_number("2248 2024 1 000012345")

    assert parsed.value == "224820241000012345"


@pytest.mark.parametrize("year", [1990, 2100])
def test_declaration_year_bounds_accepted(year: int) -> None:
    assert parse_declaration_number(f"2248{year}1000012345").year == year


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("22482024200001234", "length"),
        ("2248202410000123456", "length"),
        ("224820242000012345", "import_export_flag"),
        ("2248202410000123O5", "format"),
        ("224818991000012345", "year"),
        ("224821011000012345", "year"),
        ("", "empty"),
        ("  ", "empty"),
    ],
)
def test_bad_declaration_number_raises(raw: str, code: str) -> None:
    with pytest.raises(DeclarationNumberError) as caught:
        parse_declaration_number(raw)

    assert caught.value.code == code
    assert caught.value.value == raw


def test_legacy_declaration_number_named() -> None:
    # Constructed: district 22, year code 3, sequence 012345.
    with pytest.raises(DeclarationNumberError) as caught:
        parse_declaration_number("223012345")

    assert caught.value.code == "length"
    assert "legacy 9-digit" in caught.value.message_en
    assert "旧版 9 位" in caught.value.message_zh


# --- Unified social credit codes -----------------------------------------------------------

# python-stdnum tests/test_cn_uscc.doctest.
VALID_CREDIT_CODES = [
    "91110000600037341L",
    "121200004013590816",
    "9144030071526726XG",
    "91310115MA1K3BTP2B",
    "91310116052958608G",
    "91371082775260043P",
    "914112810713741814",
    "9162010567592034XQ",
    "91620105L015101280",
    "9115220107837941X1",
    "91340621MA2PEMUHX8",
    "92340602MA2PBQAH7E",
    "91340600MA2PBM9HXD",
]

# Also from python-stdnum's test file: the sum is a multiple of 31, so the check
# value 31 is written '0' (computed).
WRAP_AROUND_CREDIT_CODES = [
    "911522010783762860",
    "91340600MA2PBP2120",
    "91620105L015101280",
    "92340603MA2UK1TD00",
    "92340604MA2PENA300",
]

# Registering authorities N, Y and A, which GB 32100 assigns and python-stdnum's
# digits-only rule rejects. Constructed test values with computed check characters.
LETTER_AUTHORITY_CREDIT_CODES = [
    "N2340602MA2PBQAH71",
    "Y1110000600037341Y",
    "A1110000600037341K",
]


@pytest.mark.parametrize(
    "code", VALID_CREDIT_CODES + WRAP_AROUND_CREDIT_CODES + LETTER_AUTHORITY_CREDIT_CODES
)
def test_valid_credit_code_parses(code: str) -> None:
    assert parse_credit_code(code).value == code


@pytest.mark.parametrize(
    "code", VALID_CREDIT_CODES + WRAP_AROUND_CREDIT_CODES + LETTER_AUTHORITY_CREDIT_CODES
)
def test_credit_check_character_computed(code: str) -> None:
    assert uscc_check_character(code[:17]) == code[17]


@pytest.mark.parametrize("code", WRAP_AROUND_CREDIT_CODES)
def test_wrap_around_check_character_zero(code: str) -> None:
    assert uscc_check_character(code[:17]) == "0"


def test_credit_code_fields() -> None:
    parsed = parse_credit_code("91110000600037341L")

    assert parsed.registering_authority == "9"
    assert parsed.entity_type == "1"
    assert parsed.region_code == "110000"
    assert parsed.organisation_code == "600037341"


@pytest.mark.parametrize(
    "raw",
    [
        "91 110000 600037341L",
        "91-110000-600037341L",
        "91110000600037341l",
        " 9111 0000 6000 3734 1L ",
    ],
)
def test_credit_code_normalised(raw: str) -> None:
    assert parse_credit_code(raw).value == "91110000600037341L"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("91110000600037341N", "L"),  # python-stdnum
        ("A1110000600037341L", "K"),  # python-stdnum rejects it as InvalidFormat instead
    ],
)
def test_wrong_check_character_fails_checksum(raw: str, expected: str) -> None:
    with pytest.raises(CreditCodeError) as caught:
        parse_credit_code(raw)

    assert caught.value.code == "checksum"
    assert f"expected {expected}, found {raw[-1]}" in caught.value.message_en
    assert f"应为 {expected}，实为 {raw[-1]}" in caught.value.message_zh


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("9111000060003IOZSV", "format"),  # python-stdnum: forbidden letters
        ("91110000600037341*", "format"),
        ("911100006000373４1L", "format"),
        ("12345", "length"),  # python-stdnum
        ("91110000600037341L0", "length"),
        ("", "empty"),
        (" - ", "empty"),
    ],
)
def test_bad_credit_code_raises(raw: str, code: str) -> None:
    with pytest.raises(CreditCodeError) as caught:
        parse_credit_code(raw)

    assert caught.value.code == code
    assert caught.value.value == raw


def test_forbidden_letters_named() -> None:
    with pytest.raises(CreditCodeError) as caught:
        parse_credit_code("9111000060003IOZSV")

    assert "I, O, S, V, Z" in caught.value.message_en


@pytest.mark.parametrize(
    ("first17", "code"), [("9111000060003734", "length"), ("911100006000373I1", "format")]
)
def test_check_character_bad_input_raises(first17: str, code: str) -> None:
    with pytest.raises(CreditCodeError) as caught:
        uscc_check_character(first17)

    assert caught.value.code == code


# --- Vehicle plates ------------------------------------------------------------------------

# (plate, kind) stated valid by sparrow-utils, a PHP validation-rules README and test
# table, a plate-normalisation test, and a mock-data script's tractor/trailer pair.
VALID_PLATES = [
    ("京A12345", "ordinary"),
    ("京A12342", "ordinary"),
    ("浙A12345", "ordinary"),
    ("川A123AB", "ordinary"),
    ("粤BD12345", "new_energy_small"),
    ("粤AF12345", "new_energy_small"),
    ("川AF12345", "new_energy_small"),
    ("粤B12345D", "new_energy_large"),
    ("川A12345D", "new_energy_large"),
    ("沪A1234挂", "trailer"),
    ("渝A1234挂", "trailer"),
    ("京A1234挂", "trailer"),
    ("浙A1234挂", "trailer"),
    ("粤A1234挂", "trailer"),
    ("川A2222学", "coach"),
    ("粤A1234学", "coach"),
    ("粤A1234警", "police"),
    ("粤Z1234港", "hong_kong"),
    ("粤Z1234澳", "macau"),
    ("粤A1234试", "test"),
    ("使12345", "embassy"),
    ("领123456", "consulate"),
    ("军A12345", "military"),
    ("WJN22628", "armed_police"),
]

# (plate, kind by shape). sparrow-utils (川A123456, 川A2222i, 川AA12345,
# 川AD123456), the PHP README and test table (ABC1234, 京A1234I, 京AE12345),
# the plate-normalisation test (5-character sequences before 学 and 港) and the
# DCSA TNT v3 truckTransportExample placeholders.
INVALID_PLATES = [
    ("川A123456", "unknown"),
    ("川A2222i", "ordinary"),
    ("川AA12345", "new_energy_small"),
    ("川AD123456", "unknown"),
    ("ABC1234", "unknown"),
    ("京A1234I", "ordinary"),
    ("京AE12345", "new_energy_small"),
    ("京AD1234I", "new_energy_small"),
    ("粤A12345学", "coach"),
    ("粤Z12345港", "hong_kong"),
    ("1234nf932", "unknown"),
    ("0mkdsf34dfg", "unknown"),
]

EXTENDED_NEW_ENERGY_LETTERS = "ABCDEFGHJK"

# (plate, valid under D/F, valid under A-K) from the sources above.
NEW_ENERGY_CONFLICTS = [
    ("粤BD12345", True, True),
    ("粤B12345D", True, True),
    ("京AE12345", False, True),
    ("川AA12345", False, True),
    ("川AD123456", False, False),
    ("京AD1234I", False, False),
    ("沪A1234挂", True, True),
    ("川A123456", False, False),
]


@pytest.mark.parametrize(("plate", "kind"), VALID_PLATES)
def test_valid_plate_classified(plate: str, kind: str) -> None:
    parsed = parse_plate(plate)

    assert parsed.kind == kind
    assert parsed.valid is True
    assert parsed.reason is None


@pytest.mark.parametrize(("plate", "kind"), INVALID_PLATES)
def test_invalid_plate_flagged(plate: str, kind: str) -> None:
    parsed = parse_plate(plate)

    assert parsed.kind == kind
    assert parsed.valid is False
    assert parsed.reason


@pytest.mark.parametrize(("plate", "valid_df", "valid_extended"), NEW_ENERGY_CONFLICTS)
def test_new_energy_conflict_default_letters(plate: str, valid_df: bool, valid_extended: bool) -> None:
    assert parse_plate(plate).valid is valid_df


@pytest.mark.parametrize(("plate", "valid_df", "valid_extended"), NEW_ENERGY_CONFLICTS)
def test_new_energy_conflict_extended_letters(plate: str, valid_df: bool, valid_extended: bool) -> None:
    parsed = parse_plate(plate, new_energy_letters=EXTENDED_NEW_ENERGY_LETTERS)

    assert parsed.valid is valid_extended


def test_extended_letter_plate_is_small_new_energy() -> None:
    parsed = parse_plate("京AE12345", new_energy_letters=EXTENDED_NEW_ENERGY_LETTERS)

    assert parsed.kind == "new_energy_small"
    assert parsed.valid is True


def test_new_energy_letters_case_insensitive() -> None:
    assert parse_plate("京AE12345", new_energy_letters="de").valid is True


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("粤B·D12345", "粤BD12345"),
        ("WJ·N22628", "WJN22628"),
        ("粤Ｂ１２３４５", "粤B12345"),
        ("粤ｂｄ１２３４５", "粤BD12345"),
        ("川a123ab", "川A123AB"),
        ("沪A 1234挂", "沪A1234挂"),
        ("京A.12345", "京A12345"),
    ],
)
def test_plate_normalised(raw: str, value: str) -> None:
    parsed = parse_plate(raw)

    assert parsed.value == value
    assert parsed.raw == raw
    assert parsed.valid is True


def test_io_letter_reason_given() -> None:
    parsed = parse_plate("京A1234I")

    assert parsed.reason is not None
    assert "I and O" in parsed.reason


@pytest.mark.parametrize("raw", ["", "  ", "·"])
def test_blank_plate_fails_empty(raw: str) -> None:
    with pytest.raises(PlateError) as caught:
        parse_plate(raw)

    assert caught.value.code == "empty"
    assert caught.value.value == raw


@pytest.mark.parametrize("raw", ["挂", "领", "WJ", "军", "使", "粤", "粤挂", "X"])
def test_fragment_plate_flagged_not_raised(raw: str) -> None:
    parsed = parse_plate(raw)

    assert parsed.valid is False
    assert parsed.reason
