"""Cursor pagination shared by every list endpoint.

A cursor is the sort key of the last item served, as base64url JSON tagged with the
list it belongs to. Lists fetch ``limit + 1`` rows, and the extra row only shows whether
a next page exists.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from api.errors import ApiError

MAX_LIMIT = 500
DEFAULT_LIMIT = 100

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page; omit for the first page")
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


def _invalid_cursor() -> ApiError:
    return ApiError(
        422,
        "invalid_cursor",
        "The cursor is invalid or belongs to another list; start again without a cursor.",
        "游标无效或不属于此列表，请去掉 cursor 参数从第一页重新开始。",
    )


def encode_cursor(tag: str, values: Sequence[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    raw = json.dumps([tag, *plain], separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(tag: str, cursor: str | None, types: Sequence[type]) -> tuple[Any, ...] | None:
    """Return the sort key in ``cursor`` converted to ``types``; raise 422 on anything else."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid_cursor() from None
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != tag:
        raise _invalid_cursor()

    values: list[Any] = []
    for value, kind in zip(decoded[1:], types, strict=True):
        try:
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive")
                values.append(parsed)
            elif (
                kind is int
                and isinstance(value, int)
                and not isinstance(value, bool)
                and abs(value) < 2**62
                or kind is str
                and isinstance(value, str)
            ):
                values.append(value)
            else:
                raise TypeError(kind)
        except (TypeError, ValueError):
            raise _invalid_cursor() from None
    return tuple(values)


def paginate(
    rows: list[dict[str, Any]], limit: int, tag: str, key: Callable[[dict[str, Any]], Sequence[Any]]
) -> dict[str, Any]:
    """Build a page from ``limit + 1`` fetched rows."""
    items = rows[:limit]
    next_cursor = encode_cursor(tag, key(items[-1])) if len(rows) > limit and items else None
    return {"items": items, "next_cursor": next_cursor}
