"""One exception base for the API, mapped to HTTP in one handler.

Every error body carries a stable machine ``code`` and a ``message`` in the caller's
language, chosen by ``Accept-Language`` (zh-CN by default, en on request). Bodies
never name an object of a site the caller cannot see: such an object is reported
exactly as a missing one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    field: str | None = None
    value: str | None = None
    problem: str | None = None


class ErrorPublic(BaseModel):
    """Every error body: a stable machine code and a message in the caller's language."""

    code: str = Field(description="Stable machine code, e.g. not_found, forbidden, rate_limited")
    message: str = Field(description="zh-CN by default, English with Accept-Language: en")
    details: list[ErrorDetail] | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description}


# Documented on every /api/v1 route.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("Missing, invalid, expired or revoked credentials"),
    403: _error("The caller's role may not do this"),
    404: _error("Not found, or of a site the caller cannot see"),
    409: _error("The object's state does not allow the action"),
    413: _error("Request body over the limit"),
    422: _error("Invalid request"),
    429: _error("Rate limit reached; see Retry-After"),
    503: _error("Service busy; see Retry-After"),
}


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        code: str,
        message_en: str,
        message_zh: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message_en)
        self.status_code = status_code
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh
        self.details = details or []
        self.headers = headers


class NotFound(ApiError):
    def __init__(self, what_en: str, what_zh: str, key: str) -> None:
        super().__init__(404, "not_found", f"{what_en} {key} not found.", f"未找到{what_zh} {key}。")


class Unauthenticated(ApiError):
    def __init__(self, code: str = "unauthenticated", message_en: str = "", message_zh: str = "") -> None:
        super().__init__(
            401,
            code,
            message_en or "Authentication required: send a bearer token or an X-API-Key header.",
            message_zh or "需要身份认证：请提供 Bearer 令牌或 X-API-Key 请求头。",
            headers={"WWW-Authenticate": "Bearer"},
        )


class Forbidden(ApiError):
    def __init__(self, action_en: str, action_zh: str, role: str) -> None:
        super().__init__(
            403,
            "forbidden",
            f"Role {role} may not {action_en}.",
            f"角色 {role} 无权{action_zh}。",
        )


class Conflict(ApiError):
    def __init__(self, code: str, message_en: str, message_zh: str) -> None:
        super().__init__(409, code, message_en, message_zh)


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
        headers=exc.headers,
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only the field and the problem go back, never the input value: a body may
    # carry a password.
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


# Starlette raises these for routing failures, before any Kouan code runs.
_HTTP_ERRORS = {
    404: ("not_found", "No such resource.", "请求的资源不存在。"),
    405: ("method_not_allowed", "This method is not allowed on this resource.", "该资源不支持此请求方法。"),
}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, message_en, message_zh = _HTTP_ERRORS.get(
        exc.status_code, ("http_error", f"HTTP error {exc.status_code}.", f"HTTP 错误 {exc.status_code}。")
    )
    return JSONResponse(
        error_body(request, code, message_en, message_zh),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(
            request,
            "internal_error",
            "The server failed to process the request; it is logged. Try again later.",
            "服务器处理请求失败，已记录日志，请稍后重试。",
        ),
        status_code=500,
    )
