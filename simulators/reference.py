"""Reference data for realistic simulated traffic.

Owner codes are BIC-registered prefixes of carriers and lessors seen at Chinese
ports. Size-type codes follow ISO 6346:1995 (length, height, type group); tare and
maximum gross masses are typical values from carriers' published equipment
specifications, rounded to 10 kg.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kouan.identifiers import (
    ContainerNumberError,
    iso6346_check_digit,
    parse_container_number,
    uscc_check_character,
)

# (owner code, operator) pairs; every code ends in U (freight container).
OWNER_CODES: tuple[tuple[str, str], ...] = (
    ("COSU", "COSCO Shipping"),
    ("CSNU", "COSCO Shipping"),
    ("CBHU", "COSCO Shipping"),
    ("OOLU", "OOCL"),
    ("OOCU", "OOCL"),
    ("MSCU", "MSC"),
    ("MEDU", "MSC"),
    ("MSKU", "Maersk"),
    ("MRKU", "Maersk"),
    ("CMAU", "CMA CGM"),
    ("ECMU", "CMA CGM"),
    ("HLXU", "Hapag-Lloyd"),
    ("HLBU", "Hapag-Lloyd"),
    ("EGHU", "Evergreen"),
    ("EMCU", "Evergreen"),
    ("ONEU", "ONE"),
    ("YMLU", "Yang Ming"),
    ("HDMU", "HMM"),
    ("ZIMU", "ZIM"),
    ("SITU", "SITC"),
    ("TGHU", "Textainer"),
    ("TCNU", "Triton"),
    ("TEMU", "Textainer"),
    ("FCIU", "Florens"),
    ("SEGU", "SeaCo"),
)


@dataclass(frozen=True)
class SizeType:
    code: str
    description: str
    teu: int
    tare_kg: int
    max_gross_kg: int


SIZE_TYPES: tuple[SizeType, ...] = (
    SizeType("22G1", "20' general purpose, 8'6\"", 1, 2_200, 30_480),
    SizeType("22R1", "20' reefer, 8'6\"", 1, 3_050, 30_480),
    SizeType("22U1", "20' open top, 8'6\"", 1, 2_360, 30_480),
    SizeType("42G1", "40' general purpose, 8'6\"", 2, 3_750, 30_480),
    SizeType("45G1", "40' high cube, 9'6\"", 2, 3_900, 32_500),
    SizeType("45R1", "40' high cube reefer, 9'6\"", 2, 4_800, 34_000),
    SizeType("L5G1", "45' high cube, 9'6\"", 2, 4_800, 32_500),
)
# Shares of each size type in gate traffic, in the order of SIZE_TYPES.
SIZE_TYPE_WEIGHTS = (30, 5, 2, 18, 35, 7, 3)

# 省级行政区简称 with the issuing-office letters in use for freight trucks near
# the sample ports; Shanghai, Zhejiang, Jiangsu and Anhui trucks serve Yangshan.
PLATE_PREFIXES = ("沪A", "沪B", "沪D", "沪E", "浙B", "浙A", "苏E", "苏F", "皖A")
# Letters allowed in plate sequences: GA 36-2018 excludes I and O.
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

ENTERPRISE_NAMES = (
    "上海远洋国际货运有限公司",
    "宁波港联物流有限公司",
    "苏州工业园区进出口有限公司",
    "浙江义乌小商品贸易有限公司",
    "上海外高桥保税物流有限公司",
    "江苏汇鸿国际集团股份有限公司",
    "上海东方国际贸易有限公司",
    "杭州跨境电子商务有限公司",
)
# GB/T 2260 region codes of the enterprises above (Shanghai districts, Ningbo, Suzhou, ...).
REGION_CODES = ("310115", "330206", "320594", "330782", "310115", "320000", "310104", "330108")

# Seal number shapes seen on gate reads: carrier bolt seals with a letter prefix and
# 6-8 digits, and customs seals with digits only (leading zeros kept).
SEAL_PREFIXES = ("CN", "H", "FJ", "A", "OOL", "MSK", "")


def container_number(rng: random.Random) -> str:
    owner, _ = rng.choice(OWNER_CODES)
    prefix = f"{owner}{rng.randrange(1_000_000):06d}"
    return prefix + iso6346_check_digit(prefix)


def size_type(rng: random.Random) -> SizeType:
    return rng.choices(SIZE_TYPES, weights=SIZE_TYPE_WEIGHTS)[0]


def gross_weight_kg(rng: random.Random, kind: SizeType) -> float:
    """Return a laden container's gross mass: tare plus cargo, below the type's maximum."""
    cargo = rng.uniform(2_000, kind.max_gross_kg - kind.tare_kg - 500)
    return float(round(kind.tare_kg + cargo, -1))


def seal_number(rng: random.Random) -> str:
    prefix = rng.choice(SEAL_PREFIXES)
    digits = rng.randint(6, 8)
    return f"{prefix}{rng.randrange(10**digits):0{digits}d}"


def _plate_sequence(rng: random.Random, length: int) -> str:
    # Ordinary sequences mix digits with at most two letters.
    chars = [rng.choice("0123456789") for _ in range(length)]
    for index in rng.sample(range(length), k=rng.choice((0, 1, 1, 2))):
        chars[index] = rng.choice(PLATE_LETTERS)
    return "".join(chars)


def tractor_plate(rng: random.Random) -> str:
    prefix = rng.choice(PLATE_PREFIXES)
    if rng.random() < 0.12:
        # Large new-energy vehicle: five digits then D (electric) or F (hybrid).
        return f"{prefix}{rng.randrange(100_000):05d}{rng.choice('DF')}"
    return prefix + _plate_sequence(rng, 5)


def trailer_plate(rng: random.Random) -> str:
    return f"{rng.choice(PLATE_PREFIXES)}{rng.randrange(10_000):04d}挂"


def credit_code(rng: random.Random, region: str) -> str:
    """A 统一社会信用代码 of an enterprise (91 = 工商, 企业) with a valid check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = "91" + region + "".join(rng.choice(alphabet) for _ in range(9))
    return body + uscc_check_character(body)


def declaration_number(rng: random.Random, district: str, year: int, direction: str, sequence: int) -> str:
    flag = "1" if direction == "import" else "0"
    return f"{district}{year:04d}{flag}{sequence:09d}"


@dataclass(frozen=True)
class Enterprise:
    name: str
    credit_code: str


def enterprises(rng: random.Random) -> list[Enterprise]:
    return [
        Enterprise(name, credit_code(rng, region))
        for name, region in zip(ENTERPRISE_NAMES, REGION_CODES, strict=True)
    ]


def eseal_number(rng: random.Random) -> str:
    """Return an e-seal id in the shape a DataSeal-class reader prints: 4 letters and 8 digits.

    ISO 18185 builds the id from the manufacturer id and the tag serial; the
    Hi-G-Tek DataReader manual prints it as e.g. "QWER85723456".
    """
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(4))
    return f"{letters}{rng.randrange(10**8):08d}"


# Glyphs gate OCR confuses, as reported for PaddleOCR, Umi-OCR and ML Kit: 0/O/D,
# 1/I/L, 5/S, 8/B, 2/Z and 6/G. Each pair maps the true character to the misread one.
OCR_CONFUSIONS: dict[str, str] = {
    "0": "OD",
    "1": "IL",
    "5": "S",
    "8": "B",
    "2": "Z",
    "6": "G",
    "O": "0",
    "I": "1",
    "S": "5",
    "B": "8",
    "Z": "2",
    "G": "6",
    "D": "0",
}


@dataclass(frozen=True)
class Misread:
    raw: str
    outcome: str  # "repaired": the collector recovers the true number; "unreadable": it cannot


def misread_container(rng: random.Random, number: str, outcome: str | None = None) -> Misread | None:
    """Return an OCR misread of ``number`` whose outcome is certain, or None if none was found.

    A confusion in the wrong character class (a digit in the owner code, a letter in
    the serial) is repaired by position rules. A dropped character (a vertically
    painted number read short), a confusion the repair rules do not cover (G for 6,
    Z for 2) or one that breaks the check digit leaves the read unreadable. A misread
    that happens to form another valid number is never returned, because no gate
    check could tell it from a correct read. ``outcome`` requests one of the two.
    """
    candidates = []
    for index, char in enumerate(number):
        for wrong in OCR_CONFUSIONS.get(char, ""):
            candidates.append(number[:index] + wrong + number[index + 1 :])
    dropped = rng.randrange(4, 11)
    candidates.append(number[:dropped] + number[dropped + 1 :])
    rng.shuffle(candidates)

    for raw in candidates:
        try:
            value = parse_container_number(raw).value
        except ContainerNumberError:
            found = Misread(raw, "unreadable")
        else:
            found = Misread(raw, "repaired") if value == number and raw != number else None
        if found is not None and outcome in (None, found.outcome):
            return found
    return None
