"""China customs declaration (报关单) JSON: Kouan's import shape, and receipts.

The shape follows the header and line structure of the GACC declaration message
(DecHead / DecList element names of 海关总署2018年第67号公告, as reproduced in public
code; the names were not checked against the notice itself), with a container list::

    {"DecHead": {"EntryId": "224820241000012345", "IEFlag": "I", "TradeCoScc": "...",
                 "TradeName": "...", "IEDate": "20240315", "GrossWet": "57950.00000", ...},
     "DecList": [{"GNo": 1, "CodeTS": "...", "GName": "...", ...}],
     "DecContainers": [{"ContainerId": "CBHU6292344", "ContainerMd": "42G1",
                        "GoodsContaWt": "28500.00000", "SealNo": ["A05809"]}]}

Receipts (回执) move a declaration through its lifecycle::

    {"DecReceipt": {"EntryId": "...", "ReturnStatus": "800", "ReturnTime": "20240315123045123",
                    "OtherHolds": ["检疫"]}}

Receipt codes follow the customs receipt list published with public single-window
integration code (800 放行, 899 结关, 500 查验, 501-503/599 扣留, 100 退单, 700 退运,
negative = processing error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kouan import identifiers

CHINA = ZoneInfo("Asia/Shanghai")

RECEIPT_STATUS: dict[int, tuple[str, str | None]] = {
    # code: (meaning, Kouan lifecycle or None for "no change")
    1: ("电子口岸已暂存", None),
    2: ("电子口岸申报中", None),
    3: ("发送海关成功", None),
    4: ("发送海关失败", None),
    100: ("海关退单", "rejected"),
    120: ("海关入库", None),
    300: ("人工审核", None),
    399: ("海关审结", None),
    500: ("查验", "inspection_ordered"),
    501: ("扣留移送通关", "held"),
    502: ("扣留移送缉私", "held"),
    503: ("扣留移送法规", "held"),
    599: ("其它扣留", "held"),
    700: ("退运", "held"),
    800: ("放行", "released"),
    899: ("结关", "released"),
}


class CustomsJsonError(ValueError):
    """A declaration or receipt document that cannot be imported; names the field."""

    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(f"{field_name}: {detail}")
        self.field = field_name
        self.detail = detail


@dataclass
class Receipt:
    entry_id: str
    code: int
    meaning: str
    lifecycle: str | None
    returned_at: datetime | None
    other_holds: list[str] = field(default_factory=list)


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or mapping.get(key) in (None, ""):
        raise CustomsJsonError(f"{where}.{key}", "is missing")
    return mapping[key]


def entry_id(value: Any, where: str) -> str:
    try:
        return identifiers.parse_declaration_number(str(value)).value
    except identifiers.DeclarationNumberError as exc:
        raise CustomsJsonError(
            where, f"{value!r} is not an 18-digit 海关编号 ({exc.code}): {exc.message_en}"
        ) from exc


def _date(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value)
    for pattern in ("%Y%m%d%H%M%S", "%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=CHINA)
        except ValueError:
            continue
    raise CustomsJsonError(where, f"{text!r} is not a date (YYYYMMDD, a real calendar day)")


def _weight(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise CustomsJsonError(where, f"{value!r} is not a weight in kg") from exc


def to_declaration_body(document: Any, site_id: str) -> tuple[str, dict[str, Any]]:
    """Validate a 报关单 document; return (海关编号, body of PUT /api/v1/declarations/{number})."""
    head = _require(document, "DecHead", "$")
    number = entry_id(_require(head, "EntryId", "DecHead"), "DecHead.EntryId")
    parsed = identifiers.parse_declaration_number(number)
    flag = head.get("IEFlag")
    if flag not in (None, "I", "E"):
        raise CustomsJsonError("DecHead.IEFlag", f"{flag!r} is not I or E")
    if flag and {"I": "import", "E": "export"}[flag] != parsed.direction:
        raise CustomsJsonError("DecHead.IEFlag", f"{flag} contradicts the import/export digit of {number}")

    credit_code = head.get("TradeCoScc")
    if credit_code:
        try:
            credit_code = identifiers.parse_credit_code(str(credit_code)).value
        except identifiers.CreditCodeError as exc:
            raise CustomsJsonError("DecHead.TradeCoScc", f"{credit_code!r}: {exc.message_en}") from exc

    containers = document.get("DecContainers") or []
    if not isinstance(containers, list) or not containers:
        raise CustomsJsonError(
            "DecContainers", "lists no container; Kouan supervises containerised declarations"
        )
    body = {
        "site_id": site_id,
        "status": "declared",
        "direction": parsed.direction,
        "consignee_code": credit_code or None,
        "consignee_name": head.get("TradeName") or head.get("OwnerName"),
        "declared_at": _date(head.get("IEDate"), "DecHead.IEDate"),
        "containers": [_container(item, index) for index, item in enumerate(containers)],
    }
    return number, body


def _container(item: Any, index: int) -> dict[str, Any]:
    where = f"DecContainers[{index}]"
    raw = _require(item, "ContainerId", where)
    try:
        number = identifiers.parse_container_number(str(raw), repair=False).value
    except identifiers.ContainerNumberError as exc:
        raise CustomsJsonError(f"{where}.ContainerId", f"{raw!r}: {exc.message_en}") from exc
    seals = item.get("SealNo") or []
    return {
        "container_number": number,
        "size_type": item.get("ContainerMd") or None,
        "seal_numbers": [seals] if isinstance(seals, str) else list(seals),
        "gross_weight_kg": _weight(item.get("GoodsContaWt"), f"{where}.GoodsContaWt"),
    }


def read_receipt(document: Any) -> Receipt:
    """Read a receipt; a negative code is a processing error and never a release."""
    receipt = _require(document, "DecReceipt", "$")
    number = entry_id(_require(receipt, "EntryId", "DecReceipt"), "DecReceipt.EntryId")
    raw_code = _require(receipt, "ReturnStatus", "DecReceipt")
    try:
        code = int(raw_code)
    except (TypeError, ValueError) as exc:
        raise CustomsJsonError("DecReceipt.ReturnStatus", f"{raw_code!r} is not a receipt code") from exc
    meaning, lifecycle = ("处理错误", None) if code < 0 else RECEIPT_STATUS.get(code, ("未知回执", None))
    holds = receipt.get("OtherHolds") or []
    return Receipt(number, code, meaning, lifecycle, return_time(receipt.get("ReturnTime")), list(holds))


def return_time(value: Any) -> datetime | None:
    """Read yyyyMMddHHmmssfff (17 digits, China time): '20240315123045123' is 12:30:45.123+08:00."""
    if value in (None, ""):
        return None
    text = str(value)
    if len(text) != 17 or not text.isdigit():
        raise CustomsJsonError("DecReceipt.ReturnTime", f"{text!r} is not yyyyMMddHHmmssfff")
    moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(microsecond=int(text[14:]) * 1000)
    return moment.replace(tzinfo=CHINA)
