"""Query parameter and body field types shared by the API's routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime, StringConstraints

# The contract's identifier syntax: site, lane and device ids.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

SiteQuery = Annotated[
    str | None,
    Query(pattern=IDENTIFIER_PATTERN, description="Site id; all of the caller's sites when omitted"),
]
LaneQuery = Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, description="Lane id")]
DeviceQuery = Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, description="Device id")]
CodeQuery = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]


def _printable(text: str) -> str:
    if any(ord(char) < 32 and char not in "\t\n" for char in text):
        raise ValueError("must not contain control characters")
    return text


Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_printable),
]


def _plausible(moment: datetime) -> datetime:
    # Far-off years overflow when converted between time zones (Python's datetime
    # stops at years 1 and 9999), and no port event happens there.
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    return moment


MIN_YEAR = 1970
MAX_YEAR = 2200
Moment = Annotated[AwareDatetime, AfterValidator(_plausible)]
