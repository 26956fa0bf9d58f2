"""One exception base for the API, mapped to HTTP in one handler.

Every error body carries a stable machine ``code`` and a ``message`` in the caller's
language, chosen by ``Accept-Language`` (zh-CN by default, en on request).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        code: str,
        message_en: str,
        message_zh: str,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message_en)
        self.status_code = status_code
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh
        self.details = details or []


class NotFound(ApiError):
    def __init__(self, what_en: str, what_zh: str, key: str) -> None:
        super().__init__(404, "not_found", f"{what_en} {key} not found.", f"未找到{what_zh} {key}。")


def prefers_english(request: Request) -> bool:
    """Return whether Accept-Language ranks English above Chinese."""
    best_lang, best_q = "zh", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        piece = part.strip()
        if not piece:
            continue
        lang, _, params = piece.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = lang.strip().lower().split("-")[0]
        if primary in ("en", "zh") and quality > best_q:
            best_lang, best_q = primary, quality
    return best_lang == "en"


def error_body(
    request: Request, code: str, message_en: str, message_zh: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "message": message_en if prefers_english(request) else message_zh,
    }
    if details:
        body["details"] = details
    return body


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(request, exc.code, exc.message_en, exc.message_zh, exc.details),
        status_code=exc.status_code,
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
        for error in exc.errors()[:20]
    ]
    return JSONResponse(
        error_body(
            request,
            "invalid_request",
            "The request is invalid; see details for each field.",
            "请求内容无效，请查看 details 中各字段的问题。",
            details,
        ),
        status_code=422,
    )
