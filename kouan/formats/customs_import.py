"""Import customs files: CUSDEC/CUSRES interchanges and 报关单 JSON documents.

Each message or document is imported on its own: one that fails is reported with
its message reference (or index) and the reason, and the others are stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection
from pydantic import ValidationError

from kouan import identifiers
from kouan.formats import customs_json, edifact
from kouan.formats.cusdec import read_cusdec, to_declaration_body
from kouan.formats.cusres import read_cusres
from kouan.formats.declarations import AppliedResponse, DeclarationNotFound, apply_response, store_declaration


@dataclass
class ImportReport:
    declarations: list[tuple[str, int]] = field(default_factory=list)
    responses: list[AppliedResponse] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "declarations": [
                {"declaration_number": number, "version": version} for number, version in self.declarations
            ],
            "responses": [response.__dict__ for response in self.responses],
            "problems": self.problems,
        }


def _failure(exc: Exception) -> dict[str, Any]:
    """Describe why a message or document was not stored, keeping the API's error code."""
    from api.errors import ApiError

    if isinstance(exc, ApiError):
        return {
            "code": exc.code,
            "detail": exc.message_en,
            "detail_zh": exc.message_zh,
            "fields": exc.details,
        }
    if isinstance(exc, ValidationError):
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors()[:5]
        ]
        return {"code": "invalid_declaration", "detail": str(errors[0]), "fields": errors}
    if isinstance(exc, customs_json.CustomsJsonError):
        return {"code": "invalid_document", "field": exc.field, "detail": exc.detail}
    if isinstance(exc, DeclarationNotFound):
        return {"code": "declaration_not_found", "detail": str(exc)}
    raise exc


def import_edifact(conn: Connection, data: bytes, site_id: str, zone: ZoneInfo) -> ImportReport:
    """Store every CUSDEC and apply every CUSRES of one interchange."""
    report = ImportReport()
    interchange = edifact.parse_interchange(edifact.decode(data))
    report.problems.extend({**problem.to_json(), "text": str(problem)} for problem in interchange.problems)
    for message in interchange.messages:
        report.problems.extend({**problem.to_json(), "text": str(problem)} for problem in message.problems)
        where = {"message_ref": message.reference, "message_type": message.message_type}
        try:
            if message.message_type == "CUSDEC":
                _import_cusdec(conn, message, site_id, zone, report)
            elif message.message_type == "CUSRES":
                _import_cusres(conn, message, zone, report)
            else:
                report.problems.append(
                    {
                        **where,
                        "code": "unsupported_message",
                        "detail": f"{message.message_type} is not CUSDEC or CUSRES",
                    }
                )
        except Exception as exc:  # noqa: BLE001 (_failure re-raises what it does not describe)
            report.problems.append({**where, **_failure(exc)})
    return report


def _import_cusdec(
    conn: Connection, message: edifact.Message, site_id: str, zone: ZoneInfo, report: ImportReport
) -> None:
    if not message.sound:
        raise customs_json.CustomsJsonError(
            "envelope", f"CUSDEC {message.reference} is not stored: its envelope has problems"
        )
    declaration = read_cusdec(message, zone)
    customs_json.entry_id(declaration.number, "BGM document number")
    changed, version = store_declaration(conn, declaration.number, to_declaration_body(declaration, site_id))
    report.declarations.append((identifiers.parse_declaration_number(declaration.number).value, version))


def _import_cusres(conn: Connection, message: edifact.Message, zone: ZoneInfo, report: ImportReport) -> None:
    response = read_cusres(message, zone)
    number = customs_json.entry_id(response.reference, "BGM document number")
    document = {
        "message_ref": response.message_ref,
        "document_code": response.document_code,
        "status_text": response.status_text,
        "other_holds": response.other_holds,
        "texts": response.texts,
        "issued_at": response.issued_at.isoformat() if response.issued_at else None,
        "envelope_problems": [str(problem) for problem in response.problems],
    }
    report.responses.append(
        apply_response(
            conn,
            number,
            response.lifecycle,
            response.other_holds,
            source_format="CUSRES",
            message_ref=response.message_ref,
            document=document,
            envelope_sound=message.sound,
        )
    )


def import_json(conn: Connection, data: bytes, site_id: str) -> ImportReport:
    """Store 报关单 documents and apply receipts; a list is imported item by item."""
    report = ImportReport()
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append({"code": "invalid_document", "detail": f"not JSON: {exc}"})
        return report

    for index, document in enumerate(parsed if isinstance(parsed, list) else [parsed]):
        try:
            _import_document(conn, document, site_id, report)
        except Exception as exc:  # noqa: BLE001 (each failure is reported by _failure or re-raised there)
            report.problems.append({"index": index, **_failure(exc)})
    return report


def _import_document(conn: Connection, document: Any, site_id: str, report: ImportReport) -> None:
    if isinstance(document, dict) and "DecReceipt" in document:
        receipt = customs_json.read_receipt(document)
        record = {
            "code": receipt.code,
            "meaning": receipt.meaning,
            "returned_at": receipt.returned_at.isoformat() if receipt.returned_at else None,
        }
        report.responses.append(
            apply_response(
                conn,
                receipt.entry_id,
                receipt.lifecycle,
                receipt.other_holds,
                source_format="CUSTOMS_JSON",
                message_ref=str(receipt.code),
                document=record,
            )
        )
        return
    number, body = customs_json.to_declaration_body(document, site_id)
    _, version = store_declaration(conn, number, body)
    report.declarations.append((number, version))
