"""Parse and check the identifiers a port of entry handles.

Covered here: ISO 6346 container numbers, seal numbers, 18-digit China customs
declaration numbers (海关编号), unified social credit codes (GB 32100-2015) and
Chinese vehicle plates (GA 36-2018). Each parser normalises the text it receives
and raises a subclass of IdentifierError whose `code` names the rule that failed.
Plates are the exception, because a gate event must not be lost to plate syntax.
A plate that breaks the rules is returned with valid=False and a reason.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal, cast

__all__ = [
    "ContainerCategory",
    "ContainerNumber",
    "ContainerNumberError",
    "CreditCode",
    "CreditCodeError",
    "DeclarationNumber",
    "DeclarationNumberError",
    "Direction",
    "IdentifierError",
    "PlateError",
    "PlateKind",
    "SealNumber",
    "SealNumberError",
    "VehiclePlate",
    "iso6346_check_digit",
    "parse_container_number",
    "parse_credit_code",
    "parse_declaration_number",
    "parse_plate",
    "parse_seal_number",
    "uscc_check_character",
]

ContainerErrorCode = Literal["empty", "length", "format", "category", "checksum"]
SealErrorCode = Literal["empty"]
DeclarationErrorCode = Literal["empty", "length", "format", "import_export_flag", "year"]
CreditCodeErrorCode = Literal["empty", "length", "format", "checksum"]
PlateErrorCode = Literal["empty"]

ContainerCategory = Literal["U", "J", "Z"]
Direction = Literal["import", "export"]
PlateKind = Literal[
    "ordinary",
    "new_energy_small",
    "new_energy_large",
    "trailer",
    "coach",
    "police",
    "hong_kong",
    "macau",
    "test",
    "embassy",
    "consulate",
    "military",
    "armed_police",
    "unknown",
]

_LETTERS = frozenset(string.ascii_uppercase)
_DIGITS = frozenset(string.digits)


# --- Errors -------------------------------------------------------------------------


class IdentifierError(ValueError):
    """Invalid identifier, with a stable machine code and messages in English and Chinese.

    `code` is a short machine code such as "checksum", `value` is the input exactly as
    received, and `message_zh` is the text shown to customs officers. str(error) is the
    English message.
    """

    def __init__(self, code: str, value: str, message_en: str, message_zh: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.value = value
        self.message_en = message_en
        self.message_zh = message_zh


class ContainerNumberError(IdentifierError):
    """Invalid ISO 6346 container number."""

    code: ContainerErrorCode


class SealNumberError(IdentifierError):
    """Missing seal number."""

    code: SealErrorCode


class DeclarationNumberError(IdentifierError):
    """Invalid 18-digit customs declaration number (海关编号)."""

    code: DeclarationErrorCode


class CreditCodeError(IdentifierError):
    """Invalid unified social credit code (统一社会信用代码, GB 32100-2015)."""

    code: CreditCodeErrorCode


class PlateError(IdentifierError):
    """Missing vehicle plate."""

    code: PlateErrorCode


# --- ISO 6346 container numbers ------------------------------------------------------

CONTAINER_NUMBER_LENGTH = 11
_CATEGORY_INDEX = 3
_CHECK_DIGIT_INDEX = 10
_CATEGORIES = frozenset("UJZ")
# EN 13044 intermodal loading unit (ILU) letters share the ISO 6346 layout and check
# digit, but they are not ISO 6346 categories.
_ILU_CATEGORIES = frozenset("ABDEK")
# Painted numbers often box the check digit, and typed ones group the serial.
_CONTAINER_SEPARATORS = str.maketrans("", "", "-.[]()")

# OCR look-alikes are repaired by position only. ISO 6346 puts letters in positions 1-4
# and digits in positions 5-11, so a glyph in the wrong class has one plausible reading.
_DIGIT_TO_LETTER = str.maketrans("0185", "OIBS")
_LETTER_TO_DIGIT = str.maketrans("OIBSDL", "018501")


def _letter_values() -> dict[str, int]:
    # ISO 6346 letter values: A=10 upwards, skipping the multiples of 11 (11, 22, 33).
    values = {digit: int(digit) for digit in string.digits}
    value = 10
    for letter in string.ascii_uppercase:
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


_ISO6346_VALUES = _letter_values()


@dataclass(frozen=True)
class ContainerNumber:
    """ISO 6346 container number, as returned by parse_container_number.

    `value` is the 11-character upper-case number, `raw` the text as received, and
    `corrected` is True only when an OCR look-alike repair produced `value`.
    """

    value: str
    raw: str
    corrected: bool = False

    @property
    def owner_code(self) -> str:
        """Three-letter owner code registered with the BIC."""
        return self.value[:3]

    @property
    def category(self) -> ContainerCategory:
        """Equipment category: U freight container, J detachable equipment, Z trailer."""
        # parse_container_number admits only U, J and Z here.
        return cast(ContainerCategory, self.value[_CATEGORY_INDEX])

    @property
    def serial(self) -> str:
        """Six-digit serial number."""
        return self.value[4:_CHECK_DIGIT_INDEX]

    @property
    def check_digit(self) -> str:
        """Check digit, '0'..'9'."""
        return self.value[_CHECK_DIGIT_INDEX]


def _normalise_container_text(raw: str) -> str:
    without_whitespace = "".join(raw.split())
    return without_whitespace.translate(_CONTAINER_SEPARATORS).upper()


def _compute_check_digit(first10: str) -> str:
    # ISO 6346: weight 2**position, sum mod 11. A remainder of 10 is written 0. The
    # standard advises owners to avoid such serials, but some are in service.
    total = sum(_ISO6346_VALUES[char] * 2**position for position, char in enumerate(first10))
    return str(total % 11 % 10)


def _container_part(index: int) -> tuple[str, str]:
    """Return the English and Chinese names of the part at a 0-based index."""
    if index < _CATEGORY_INDEX:
        return "owner code", "箱主代码"
    if index == _CATEGORY_INDEX:
        return "category letter", "设备识别码"
    if index < _CHECK_DIGIT_INDEX:
        return "serial number", "顺序号"
    return "check digit", "校验位"


def _find_misplaced_character(text: str) -> int | None:
    """Return the 0-based index of the first character in the wrong class, or None."""
    for index, char in enumerate(text):
        expected = _LETTERS if index <= _CATEGORY_INDEX else _DIGITS
        if char not in expected:
            return index
    return None


def _container_format_error(raw: str, text: str, index: int) -> ContainerNumberError:
    char = text[index]
    position = index + 1
    part_en, part_zh = _container_part(index)
    if index <= _CATEGORY_INDEX:
        kind_en, kind_zh = "a letter", "字母"
    else:
        kind_en, kind_zh = "a digit", "数字"
    return ContainerNumberError(
        "format",
        raw,
        f"Container number {text!r} has {char!r} at position {position}, where ISO 6346 "
        f"requires {kind_en}. Check the {part_en} on the container.",
        f"箱号 {text} 第 {position} 位为“{char}”，ISO 6346 要求此处为{kind_zh}。请核对箱体上的{part_zh}。",
    )


def _container_category_error(raw: str, text: str) -> ContainerNumberError:
    letter = text[_CATEGORY_INDEX]
    if letter in _ILU_CATEGORIES:
        note_en = f" {letter!r} is an EN 13044 intermodal loading unit letter, not ISO 6346."
        note_zh = f"“{letter}”是 EN 13044 可交换载货单元的字母，不属于 ISO 6346。"
    elif letter == "R":
        note_en = " ISO 6346 marks reefers in the size-type code, not with R."
        note_zh = "冷藏箱由尺寸类型代码标识，ISO 6346 不使用 R。"
    else:
        note_en = ""
        note_zh = ""
    return ContainerNumberError(
        "category",
        raw,
        f"Container number {text!r} has category letter {letter!r}, but ISO 6346 allows "
        f"only U (freight container), J (detachable equipment) or Z (trailer or chassis)."
        f"{note_en} Check the fourth letter on the container.",
        f"箱号 {text} 的设备识别码为“{letter}”，ISO 6346 只允许 U（集装箱）、"
        f"J（可拆卸设备）或 Z（拖车或底盘车）。{note_zh}请核对箱体上的第 4 位字母。",
    )


def _container_checksum_error(
    raw: str, text: str, expected: str, *, repaired: bool = False
) -> ContainerNumberError:
    found = text[_CHECK_DIGIT_INDEX]
    if repaired:
        reading_en = (
            f"Container number {raw!r}, read as {text!r} after correcting OCR look-alike "
            f"characters, failed its ISO 6346 check digit"
        )
        reading_zh = f"箱号 {raw} 按 OCR 易混字符修正为 {text} 后校验位错误"
    else:
        reading_en = f"Container number {text!r} failed its ISO 6346 check digit"
        reading_zh = f"箱号 {text} 校验位错误"
    return ContainerNumberError(
        "checksum",
        raw,
        f"{reading_en}: expected {expected}, found {found}. "
        f"Re-read the number from the container or its documents.",
        f"{reading_zh}：应为 {expected}，实为 {found}。请按箱体或单证重新核对箱号。",
    )


def _check_container_shape(raw: str, text: str, length: int) -> ContainerNumberError | None:
    """Return the empty, length or format error of `text`, or None if its shape is right.

    `length` is 11 for a full number and 10 for the input of iso6346_check_digit.
    """
    if length == CONTAINER_NUMBER_LENGTH:
        subject_en, subject_zh = "Container number", "箱号"
    else:
        subject_en, subject_zh = "Container number without check digit", "不含校验位的箱号"

    if not text:
        return ContainerNumberError(
            "empty",
            raw,
            f"{subject_en} is empty. Enter the ISO 6346 number painted on the container.",
            f"{subject_zh}为空。请输入箱体上的 ISO 6346 箱号。",
        )

    if len(text) != length:
        return ContainerNumberError(
            "length",
            raw,
            f"{subject_en} {text!r} has {len(text)} characters, but ISO 6346 requires "
            f"{length}. Re-read the full number from the container.",
            f"{subject_zh} {text} 为 {len(text)} 位，应为 {length} 位。请按箱体重新核对完整箱号。",
        )

    index = _find_misplaced_character(text)
    if index is not None:
        return _container_format_error(raw, text, index)
    return None


def _check_container_number(raw: str, text: str) -> ContainerNumberError | None:
    """Return the first rule that `text` breaks as an error, or None if it is valid."""
    error = _check_container_shape(raw, text, CONTAINER_NUMBER_LENGTH)
    if error is not None:
        return error

    if text[_CATEGORY_INDEX] not in _CATEGORIES:
        return _container_category_error(raw, text)

    expected = _compute_check_digit(text[:_CHECK_DIGIT_INDEX])
    if text[_CHECK_DIGIT_INDEX] != expected:
        return _container_checksum_error(raw, text, expected)
    return None


def _repair_ocr_confusions(text: str) -> str:
    owner_and_category = text[: _CATEGORY_INDEX + 1].translate(_DIGIT_TO_LETTER)
    serial_and_check = text[_CATEGORY_INDEX + 1 :].translate(_LETTER_TO_DIGIT)
    return owner_and_category + serial_and_check


def iso6346_check_digit(first10: str) -> str:
    """Compute the ISO 6346 check digit of an owner code, category letter and serial.

    The input is normalised like a container number, so 'csqu 305438' gives '3'.
    The category letter is not checked, because EN 13044 codes use the same algorithm.
    Raises ContainerNumberError ("empty", "length" or "format") unless the input is
    4 letters followed by 6 digits.
    """
    text = _normalise_container_text(first10)
    error = _check_container_shape(first10, text, _CHECK_DIGIT_INDEX)
    if error is not None:
        raise error

    return _compute_check_digit(text)


def parse_container_number(raw: str, *, repair: bool = True) -> ContainerNumber:
    """Parse an ISO 6346 container number, repairing OCR look-alikes if needed.

    Spaces, hyphens, dots and brackets are removed and letters upper-cased, so
    ' ZEPU-003725 [5]' becomes 'ZEPU0037255'. A number that validates as received is
    never changed. Otherwise, if `repair` is True, digits in positions 1-4 are read
    as letters (0 O, 1 I, 8 B, 5 S). Letters in positions 5-11 are read as digits
    (O 0, I 1, B 8, S 5, D 0, L 1). The result is accepted only if it validates.

    Raises ContainerNumberError for the number as received. The one exception is a
    repair that fixes the format but fails the check digit. That raises "checksum"
    and names both readings, because only the check digit is then in doubt.
    """
    text = _normalise_container_text(raw)
    error = _check_container_number(raw, text)
    if error is None:
        return ContainerNumber(value=text, raw=raw, corrected=False)

    if not repair or error.code != "format":
        raise error

    repaired = _repair_ocr_confusions(text)
    repaired_error = _check_container_number(raw, repaired)
    if repaired_error is None:
        return ContainerNumber(value=repaired, raw=raw, corrected=True)

    if repaired_error.code == "checksum":
        expected = _compute_check_digit(repaired[:_CHECK_DIGIT_INDEX])
        raise _container_checksum_error(raw, repaired, expected, repaired=True) from error
    raise error


# --- Seal numbers (ISO 17712) --------------------------------------------------------

# DCSA domain model 3.1.0, sealNumber maxLength.
SEAL_NUMBER_MAX_LENGTH = 15
# Text found where a seal number belongs. SI, Y and NA appear in real COARRI and CODECO
# SEL segments, "string" in DCSA conformance fixtures, and N is the matching no-flag.
_SEAL_PLACEHOLDERS = frozenset({"si", "y", "n", "na", "string"})


@dataclass(frozen=True)
class SealNumber:
    """Seal number, kept as an opaque string.

    ISO 17712 defines seal classes but no number syntax or check digit, so `value` is
    the trimmed text with leading zeros kept: 086588 and 86588 are different seals.
    `placeholder` flags a yes/no flag or stub text where a number belongs, and
    `too_long` a value longer than DCSA's 15-character limit.
    """

    value: str
    raw: str
    placeholder: bool = False
    too_long: bool = False


def parse_seal_number(raw: str) -> SealNumber:
    """Parse a seal number, flagging placeholders and over-long values.

    Raises TypeError for a non-string, because an int has already lost leading zeros,
    and SealNumberError ("empty") for blank input.
    """
    if not isinstance(raw, str):
        raise TypeError(
            f"Seal number must be a str, got {type(raw).__name__} {raw!r}. "
            f"Pass the text as received so that leading zeros are kept."
        )

    value = raw.strip()
    if not value:
        raise SealNumberError(
            "empty",
            raw,
            "Seal number is empty. Enter the number printed on the seal.",
            "施封号为空。请输入封志上的号码。",
        )

    return SealNumber(
        value=value,
        raw=raw,
        placeholder=value.casefold() in _SEAL_PLACEHOLDERS,
        too_long=len(value) > SEAL_NUMBER_MAX_LENGTH,
    )


# --- Customs declaration numbers (海关编号) -------------------------------------------

DECLARATION_NUMBER_LENGTH = 18
# Length of the legacy declaration numbers: 2-digit district, year code and 6-digit
# sequence.
LEGACY_DECLARATION_NUMBER_LENGTH = 9
# Plausibility bounds, not part of the 报关单填制规范: they catch shifted or mistyped
# digits in positions 5-8.
DECLARATION_YEAR_MIN = 1990
DECLARATION_YEAR_MAX = 2100
_DIRECTIONS: dict[str, Direction] = {"1": "import", "0": "export"}


@dataclass(frozen=True)
class DeclarationNumber:
    """18-digit customs declaration number (海关编号).

    Layout per the 报关单填制规范: positions 1-4 are the 关区代码 of the accepting customs
    office, 5-8 the calendar year, 9 the import/export flag and 10-18 the sequence.
    `customs_district` stays a string because codes such as 0901 start with zero.
    """

    value: str
    customs_district: str
    year: int
    direction: Direction
    sequence: str


def _check_declaration_digits(raw: str, text: str) -> None:
    if not text:
        raise DeclarationNumberError(
            "empty",
            raw,
            "Declaration number is empty. Enter the 18-digit customs declaration number.",
            "海关编号为空。请输入 18 位海关编号。",
        )

    for index, char in enumerate(text):
        if char not in _DIGITS:
            raise DeclarationNumberError(
                "format",
                raw,
                f"Declaration number {text!r} has {char!r} at position {index + 1}, but a "
                f"customs declaration number contains digits only. Check for a letter O "
                f"or I typed in place of 0 or 1.",
                f"海关编号 {text} 第 {index + 1} 位为“{char}”，海关编号只能由数字组成。"
                f"请检查是否把数字 0、1 误录为字母 O、I。",
            )

    if len(text) == LEGACY_DECLARATION_NUMBER_LENGTH:
        raise DeclarationNumberError(
            "length",
            raw,
            f"Declaration number {text!r} has 9 digits, which is the legacy 9-digit form "
            f"(customs district, year code, sequence). Only 18-digit numbers are "
            f"supported, so look up the 18-digit number of this declaration.",
            f"海关编号 {text} 为 9 位，是旧版 9 位编号（关区、年份码、顺序号），"
            f"系统不支持。请查询该报关单的 18 位海关编号。",
        )

    if len(text) != DECLARATION_NUMBER_LENGTH:
        raise DeclarationNumberError(
            "length",
            raw,
            f"Declaration number {text!r} has {len(text)} digits, but a customs declaration "
            f"number has 18. Re-enter the full number from the declaration.",
            f"海关编号 {text} 为 {len(text)} 位，应为 18 位数字。请按报关单重新录入完整编号。",
        )


def parse_declaration_number(raw: str) -> DeclarationNumber:
    """Parse an 18-digit customs declaration number (海关编号).

    Whitespace is removed, so '2248 2024 1 000012345' is accepted. Raises
    DeclarationNumberError: "empty", "format" for a non-digit, "length" for any other
    length (with its own message for the legacy 9-digit form), "year" for a year
    outside 1990-2100, and "import_export_flag" unless position 9 is 0 or 1.
    """
    text = "".join(raw.split())
    _check_declaration_digits(raw, text)

    year = int(text[4:8])
    if not DECLARATION_YEAR_MIN <= year <= DECLARATION_YEAR_MAX:
        raise DeclarationNumberError(
            "year",
            raw,
            f"Declaration number {text!r} has year {year} in positions 5-8, outside "
            f"{DECLARATION_YEAR_MIN}-{DECLARATION_YEAR_MAX}. Check the number for "
            f"shifted or mistyped digits.",
            f"海关编号 {text} 第 5-8 位的年份为 {year}，不在 {DECLARATION_YEAR_MIN}-"
            f"{DECLARATION_YEAR_MAX} 范围内。请检查编号是否错位或录错。",
        )

    flag = text[8]
    direction = _DIRECTIONS.get(flag)
    if direction is None:
        raise DeclarationNumberError(
            "import_export_flag",
            raw,
            f"Declaration number {text!r} has {flag!r} at position 9, which must be "
            f"1 (import) or 0 (export). Check the number against the declaration.",
            f"海关编号 {text} 第 9 位为“{flag}”，进出口标志只能为 1（进口）或 0（出口）。请按报关单核对。",
        )

    return DeclarationNumber(
        value=text,
        customs_district=text[:4],
        year=year,
        direction=direction,
        sequence=text[9:],
    )


# --- Unified social credit codes (GB 32100-2015) --------------------------------------

CREDIT_CODE_LENGTH = 18
# GB 32100 character set: digits, then capital letters without I, O, Z, S and V.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {char: value for value, char in enumerate(_USCC_ALPHABET)}
_USCC_FORBIDDEN_LETTERS = frozenset("IOZSV")
_USCC_MODULUS = 31


@dataclass(frozen=True)
class CreditCode:
    """Unified social credit code (统一社会信用代码), 18 upper-case characters.

    Fields follow the GB 32100 layout: registering authority (1), entity type (2),
    administrative division code per GB/T 2260 (3-8) and organisation code per
    GB 11714 (9-17), followed by the check character.
    """

    value: str
    registering_authority: str
    entity_type: str
    region_code: str
    organisation_code: str


def _credit_code_format_error(raw: str, text: str) -> CreditCodeError | None:
    forbidden = sorted({char for char in text if char in _USCC_FORBIDDEN_LETTERS})
    if forbidden:
        letters_en = ", ".join(forbidden)
        letters_zh = "、".join(forbidden)
        return CreditCodeError(
            "format",
            raw,
            f"Unified social credit code {text!r} contains {letters_en}, but GB 32100 never "
            f"uses the letters I, O, Z, S or V. Check for the digits 1, 0, 2 or 5 "
            f"misread as letters.",
            f"统一社会信用代码 {text} 含有字母 {letters_zh}，GB 32100 不使用字母 I、O、Z、S、V。"
            f"请检查是否把数字 1、0、2、5 误录为字母。",
        )

    for index, char in enumerate(text):
        if char not in _USCC_VALUES:
            return CreditCodeError(
                "format",
                raw,
                f"Unified social credit code {text!r} has {char!r} at position {index + 1}, "
                f"but GB 32100 allows only digits and capital letters. Re-enter the code "
                f"from the business licence.",
                f"统一社会信用代码 {text} 第 {index + 1} 位为“{char}”，只能为数字或大写字母。"
                f"请按营业执照重新录入。",
            )
    return None


def _check_credit_code_shape(raw: str, text: str, length: int) -> None:
    if not text:
        raise CreditCodeError(
            "empty",
            raw,
            "Unified social credit code is empty. Enter the 18-character code from the business licence.",
            "统一社会信用代码为空。请输入营业执照上的 18 位代码。",
        )

    if len(text) != length:
        raise CreditCodeError(
            "length",
            raw,
            f"Unified social credit code {text!r} has {len(text)} characters, but GB 32100 "
            f"requires {length}. Re-enter the full code from the business licence.",
            f"统一社会信用代码 {text} 为 {len(text)} 位，应为 {length} 位。请按营业执照重新录入完整代码。",
        )

    error = _credit_code_format_error(raw, text)
    if error is not None:
        raise error


def _normalise_credit_code_text(raw: str) -> str:
    return "".join(raw.split()).replace("-", "").upper()


def _compute_check_character(first17: str) -> str:
    # GB 32100: weights 3**(i-1) mod 31, and a check value of 31 is written '0'.
    total = sum(_USCC_VALUES[char] * pow(3, index, _USCC_MODULUS) for index, char in enumerate(first17))
    check_value = _USCC_MODULUS - total % _USCC_MODULUS
    return _USCC_ALPHABET[check_value % _USCC_MODULUS]


def uscc_check_character(first17: str) -> str:
    """Compute the GB 32100 check character of the first 17 characters of a code.

    Whitespace and hyphens are removed and letters upper-cased first. Raises
    CreditCodeError ("empty", "length" or "format") unless 17 valid characters remain.
    """
    text = _normalise_credit_code_text(first17)
    _check_credit_code_shape(first17, text, CREDIT_CODE_LENGTH - 1)
    return _compute_check_character(text)


def parse_credit_code(raw: str) -> CreditCode:
    """Parse a unified social credit code and verify its check character.

    Whitespace and hyphens are removed and letters upper-cased. Any registering
    authority character is accepted, including the letters A, N and Y that GB 32100
    assigns, because the check character is the standard's integrity check. Raises
    CreditCodeError: "empty", "length", "format" for I, O, Z, S, V or other
    characters, and "checksum" naming the expected character.
    """
    text = _normalise_credit_code_text(raw)
    _check_credit_code_shape(raw, text, CREDIT_CODE_LENGTH)

    expected = _compute_check_character(text[:-1])
    found = text[-1]
    if found != expected:
        raise CreditCodeError(
            "checksum",
            raw,
            f"Unified social credit code {text!r} failed its GB 32100 check character: "
            f"expected {expected}, found {found}. Check the code against the business "
            f"licence.",
            f"统一社会信用代码 {text} 校验码错误：应为 {expected}，实为 {found}。请按营业执照核对。",
        )

    return CreditCode(
        value=text,
        registering_authority=text[0],
        entity_type=text[1],
        region_code=text[2:8],
        organisation_code=text[8:17],
    )


# --- Vehicle plates (GA 36-2018) -------------------------------------------------------

# Abbreviations of the 31 mainland provinces, autonomous regions and municipalities.
_PROVINCES = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
# Plate sequence characters: digits and capital letters except I and O, which GA 36-2018
# does not use in sequences.
_SEQUENCE_CHARACTERS = frozenset("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")
_PLATE_SEQUENCE_LENGTH = 5
_SUFFIX_SEQUENCE_LENGTH = 4
_NEW_ENERGY_SEQUENCE_LENGTH = 6
# Suffix character -> kind and the plural name used in reasons.
_SUFFIX_KINDS: dict[str, tuple[PlateKind, str]] = {
    "挂": ("trailer", "Trailer plates"),
    "学": ("coach", "Driving-school plates"),
    "警": ("police", "Police plates"),
    "港": ("hong_kong", "Hong Kong plates"),
    "澳": ("macau", "Macau plates"),
    "试": ("test", "Test plates"),
    "领": ("consulate", "Consulate plates"),
}
# Full-width ASCII (U+FF01-U+FF5E), as typed with a Chinese input method.
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
# Separators printed on plates or produced by input methods: middle dots and dots.
_PLATE_SEPARATORS = str.maketrans("", "", "·•・.")


@dataclass(frozen=True)
class VehiclePlate:
    """Vehicle plate as read at the gate.

    `kind` is the plate family that the text's shape points to. It is set even when
    `valid` is False, so that a trailer plate with a misread sequence is still
    recognisable as a trailer. `reason` is the English explanation when it is not valid.
    """

    value: str
    raw: str
    kind: PlateKind
    valid: bool
    reason: str | None = None


def _normalise_plate_text(raw: str) -> str:
    half_width = raw.translate(_FULL_WIDTH_TO_ASCII)
    without_whitespace = "".join(half_width.split())
    return without_whitespace.translate(_PLATE_SEPARATORS).upper()


def _check_sequence(sequence: str, length: int, plates: str) -> str | None:
    """Return why `sequence` is not a valid plate sequence of `length`, or None.

    `plates` names the plate family in the plural, as in "Trailer plates".
    """
    if len(sequence) != length:
        return f"{plates} have {length} sequence characters, but this one has {len(sequence)}."

    if "I" in sequence or "O" in sequence:
        return "The letters I and O are never used in a plate sequence."

    for char in sequence:
        if char not in _SEQUENCE_CHARACTERS:
            return f"{char!r} is not a digit or capital letter, so it cannot be in a sequence."
    return None


def _check_province_prefix(value: str) -> str | None:
    """Return why `value` does not start with province and issuing-office letter, or None."""
    if value[0] not in _PROVINCES:
        return f"{value[0]!r} is not a province abbreviation, so this is not a GA 36 plate."

    if len(value) < 2 or value[1] not in _LETTERS:
        return "Position 2 must be the issuing-office letter."
    return None


def _classify_new_energy(value: str, letters: str) -> tuple[PlateKind, str | None]:
    """Classify an 8-character plate as small or large NEV, with a reason if invalid."""
    sequence = value[2:]
    allowed = ", ".join(letters)
    if "I" in sequence or "O" in sequence:
        reason = "The letters I and O are never used in a plate sequence."
    else:
        reason = None

    # Large NEV: five digits, then the energy letter in the sixth sequence position.
    if all(char in _DIGITS for char in sequence[:5]) and sequence[5] in _LETTERS:
        if reason is None and sequence[5] not in letters:
            reason = f"{sequence[5]!r} is not one of the new-energy letters {allowed}."
        return "new_energy_large", reason

    # Small NEV: energy letter first, a letter or digit, then four digits.
    if sequence[0] in _LETTERS:
        if reason is None and sequence[0] not in letters:
            reason = f"{sequence[0]!r} is not one of the new-energy letters {allowed}."
        if reason is None and sequence[1] not in _SEQUENCE_CHARACTERS:
            reason = f"{sequence[1]!r} cannot be in a plate sequence."
        if reason is None and not all(char in _DIGITS for char in sequence[2:]):
            reason = "The last four characters of a small new-energy plate must be digits."
        return "new_energy_small", reason

    return "unknown", (
        f"An 8-character plate must be a new-energy plate, with one of {allowed} first or last "
        f"in the sequence."
    )


def _classify_special(value: str) -> tuple[PlateKind, str | None] | None:
    """Classify plates marked by a prefix: armed police, military, embassy, consulate."""
    # NOTE: only the outline of these plates is checked. Their sequence rules are
    # set outside GA 36-2018 and are not encoded here.
    if value.startswith("WJ"):
        rest = value[2:]
        if rest[:1] in _PROVINCES:
            rest = rest[1:]
        if len(rest) not in (5, 6):
            return "armed_police", "An armed-police plate has 5 or 6 characters after WJ."
        return "armed_police", _check_sequence(rest, len(rest), "Armed-police plates")

    if value.startswith("军"):
        if len(value) < 2 or value[1] not in _LETTERS:
            return "military", "A military plate has a letter after 军."
        return "military", _check_sequence(value[2:], _PLATE_SEQUENCE_LENGTH, "Military plates")

    if value[0] in "使领":
        kind: PlateKind = "embassy" if value[0] == "使" else "consulate"
        digits = value[1:]
        if len(digits) not in (5, 6) or not all(char in _DIGITS for char in digits):
            return kind, f"A plate starting with {value[0]} has 5 or 6 digits after it."
        return kind, None
    return None


def _classify_plate(value: str, new_energy_letters: str) -> tuple[PlateKind, str | None]:
    special = _classify_special(value)
    if special is not None:
        return special

    suffix = _SUFFIX_KINDS.get(value[-1])
    if suffix is not None:
        kind, plates = suffix
        reason = _check_province_prefix(value) or _check_sequence(
            value[2:-1], _SUFFIX_SEQUENCE_LENGTH, plates
        )
        return kind, reason

    prefix_reason = _check_province_prefix(value)
    if prefix_reason is not None:
        return "unknown", prefix_reason

    sequence_length = len(value) - 2
    if sequence_length == _NEW_ENERGY_SEQUENCE_LENGTH:
        return _classify_new_energy(value, new_energy_letters)
    if sequence_length == _PLATE_SEQUENCE_LENGTH:
        return "ordinary", _check_sequence(value[2:], _PLATE_SEQUENCE_LENGTH, "Ordinary plates")
    return "unknown", (
        f"The plate has {len(value)} characters, but a GA 36 plate has 7, or 8 for a new-energy plate."
    )


def parse_plate(raw: str, *, new_energy_letters: str = "DF") -> VehiclePlate:
    """Normalise and classify a Chinese vehicle plate.

    Full-width letters and digits become half-width, spaces and middle dots are removed
    and letters upper-cased, so '粤B·D12345' becomes '粤BD12345'. `new_energy_letters`
    lists the letters that mark a new-energy plate: GA 36-2018 uses D (pure electric)
    and F (other), and some validators accept "ABCDEFGHJK". A plate that breaks the
    rules is returned with valid=False and a reason. Raises PlateError only for blank
    input.
    """
    value = _normalise_plate_text(raw)
    if not value:
        raise PlateError(
            "empty",
            raw,
            "Vehicle plate is empty. Enter the plate as shown on the vehicle.",
            "车牌号为空。请按车辆号牌录入。",
        )

    kind, reason = _classify_plate(value, new_energy_letters.upper())
    return VehiclePlate(value=value, raw=raw, kind=kind, valid=reason is None, reason=reason)
