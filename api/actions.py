"""Map the correlation package's audited human actions to API errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import ApiError, NotFound
from collector.correlation.actions import ActionError, ActionNotFound

# Input problems get 422. Any other rejected action conflicts with its subject's
# state and gets 409.
INPUT_CODES = frozenset(
    {"user_required", "reason_required", "field_not_correctable", "corrected_value_invalid"}
)


@contextmanager
def action_errors(what_en: str, what_zh: str, key: str) -> Iterator[None]:
    """Translate ActionError raised inside the block; a missing subject reads as ``not_found``."""
    try:
        yield
    except ActionNotFound as exc:
        raise NotFound(what_en, what_zh, key) from exc
    except ActionError as exc:
        status = 422 if exc.code in INPUT_CODES else 409
        raise ApiError(status, exc.code, exc.message_en, exc.message_zh) from exc
