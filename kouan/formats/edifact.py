"""UN/EDIFACT interchanges: syntax through pydifact, envelopes checked here.

pydifact reads the service string advice (UNA), the separators and the release
character and yields segments. This module groups them into messages (UNH..UNT)
and checks the envelope (ISO 9735 segment counts and control references), so a
problem in one message is reported by segment number and never costs the messages
that are sound.

Positions are 1-based segment numbers: ``segment`` counts from the start of the
interchange (UNA included when present), ``message_segment`` from the message's UNH.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from pydifact.exceptions import EDISyntaxError
from pydifact.parser import Parser

logger = logging.getLogger(__name__)

# Envelope problem codes; stable, shown in import reports.
SYNTAX_ERROR = "syntax_error"
SEGMENT_COUNT_MISMATCH = "segment_count_mismatch"
CONTROL_REFERENCE_MISMATCH = "control_reference_mismatch"
MESSAGE_COUNT_MISMATCH = "message_count_mismatch"
MISSING_UNT = "missing_unt"
SEGMENT_OUTSIDE_MESSAGE = "segment_outside_message"
BAD_COUNT_VALUE = "bad_count_value"

# Largest interchange accepted in one piece; a terminal's daily CODECO is well under.
MAX_INTERCHANGE_CHARS = 20_000_000

_ENVELOPE_TAGS = frozenset({"UNA", "UNB", "UNZ", "UNG", "UNE"})


class EdifactError(ValueError):
    """The text cannot be read as EDIFACT at all."""


@dataclass(frozen=True)
class Problem:
    code: str
    segment: int
    tag: str
    detail: str
    message_ref: str | None = None
    message_segment: int | None = None

    def __str__(self) -> str:
        where = f"segment {self.segment} ({self.tag})"
        if self.message_ref is not None:
            where += f", segment {self.message_segment} of message {self.message_ref}"
        return f"{self.code} at {where}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "segment": self.segment,
            "tag": self.tag,
            "detail": self.detail,
            "message_ref": self.message_ref,
            "message_segment": self.message_segment,
        }


@dataclass(frozen=True)
class Segment:
    tag: str
    elements: tuple[Any, ...]
    position: int

    def element(self, index: int) -> Any:
        """Return data element ``index`` (0-based after the tag), '' when absent."""
        return self.elements[index] if index < len(self.elements) else ""

    def component(self, index: int, component: int = 0) -> str:
        """Return one component of a data element as text, '' when absent."""
        value = self.element(index)
        if isinstance(value, list):
            return str(value[component]) if component < len(value) and value[component] is not None else ""
        return str(value) if component == 0 and value is not None else ""

    def text(self, index: int) -> str:
        """Return a free-text element with its components joined by ':' as the sender wrote them.

        FTX text (C108) has up to five 4440 components, so 'CONSOLIDATED STATUS:HELD'
        arrives as two components.
        """
        value = self.element(index)
        if isinstance(value, list):
            return ":".join(str(part) for part in value if part is not None)
        return str(value) if value is not None else ""

    def qualifier(self) -> str:
        return self.component(0)


@dataclass
class Message:
    reference: str
    message_type: str
    version: str
    segments: list[Segment]
    problems: list[Problem] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        """True when the envelope around this message has no problem."""
        return not self.problems

    @property
    def body(self) -> list[Segment]:
        """Segments between UNH and UNT."""
        return [segment for segment in self.segments if segment.tag not in ("UNH", "UNT")]


@dataclass
class Interchange:
    syntax: str | None
    sender: str | None
    recipient: str | None
    prepared: str | None
    control_reference: str | None
    messages: list[Message]
    problems: list[Problem]

    def all_problems(self) -> list[Problem]:
        found = list(self.problems)
        for message in self.messages:
            found.extend(message.problems)
        return sorted(found, key=lambda problem: problem.segment)


def _read_segments(text: str) -> tuple[list[Segment], Problem | None]:
    segments: list[Segment] = []
    try:
        with warnings.catch_warnings():
            # pydifact warns per segment that it ships no directory XML to validate
            # against; Kouan validates the segments it maps itself.
            warnings.simplefilter("ignore")
            for position, segment in enumerate(Parser().parse(text), start=1):
                segments.append(Segment(segment.tag.strip(), tuple(segment.elements), position))
    except EDISyntaxError as exc:
        position = len(segments) + 1
        return segments, Problem(
            SYNTAX_ERROR, position, "?", f"text after segment {position - 1} is not EDIFACT: {exc}"
        )
    return segments, None


def parse_interchange(text: str) -> Interchange:
    """Split an interchange into messages and check its envelope."""
    if len(text) > MAX_INTERCHANGE_CHARS:
        raise EdifactError(f"Interchange has {len(text)} characters; the limit is {MAX_INTERCHANGE_CHARS}")
    text = text.lstrip("\ufeff \r\n\t")
    if not text[:3].isalpha() or text[:3] not in ("UNA", "UNB", "UNH"):
        raise EdifactError(f"Text starts with {text[:10]!r}; an interchange starts with UNA, UNB or UNH")

    segments, syntax_problem = _read_segments(text)
    interchange = Interchange(None, None, None, None, None, [], [])
    current: Message | None = None
    for segment in segments:
        current = _take(interchange, current, segment)

    if current is not None:
        current.problems.append(
            Problem(
                MISSING_UNT,
                current.segments[-1].position,
                current.segments[-1].tag,
                "the message ends without a UNT segment",
                current.reference,
                len(current.segments),
            )
        )
        interchange.messages.append(current)
    if syntax_problem is not None:
        _attach_syntax_problem(interchange, current, syntax_problem)
    return interchange


def _attach_syntax_problem(interchange: Interchange, current: Message | None, problem: Problem) -> None:
    if current is not None:
        current.problems.append(
            Problem(
                problem.code,
                problem.segment,
                problem.tag,
                problem.detail,
                current.reference,
                len(current.segments) + 1,
            )
        )
    else:
        interchange.problems.append(problem)


def _take(interchange: Interchange, current: Message | None, segment: Segment) -> Message | None:
    """Add one segment to the interchange; return the message still open."""
    if segment.tag == "UNB":
        interchange.syntax = segment.component(0, 0)
        interchange.sender = segment.component(1, 0)
        interchange.recipient = segment.component(2, 0)
        interchange.prepared = f"{segment.component(3, 0)}:{segment.component(3, 1)}"
        interchange.control_reference = segment.component(4)
        return current

    if segment.tag == "UNH":
        if current is not None:
            current.problems.append(
                Problem(
                    MISSING_UNT,
                    segment.position,
                    segment.tag,
                    f"message {current.reference} is not closed by UNT before the next UNH",
                    current.reference,
                    len(current.segments) + 1,
                )
            )
            interchange.messages.append(current)
        identifier = segment.element(1)
        parts = identifier if isinstance(identifier, list) else [identifier]
        return Message(
            reference=segment.component(0),
            message_type=str(parts[0]),
            version=":".join(str(part) for part in parts[1:]),
            segments=[segment],
        )

    if segment.tag == "UNT":
        if current is None:
            interchange.problems.append(
                Problem(SEGMENT_OUTSIDE_MESSAGE, segment.position, "UNT", "UNT without a preceding UNH")
            )
            return None
        current.segments.append(segment)
        _check_trailer(current, segment)
        interchange.messages.append(current)
        return None

    if segment.tag == "UNZ":
        if current is not None:
            current.problems.append(
                Problem(
                    MISSING_UNT,
                    segment.position,
                    "UNZ",
                    f"message {current.reference} is not closed by UNT before UNZ",
                    current.reference,
                    len(current.segments) + 1,
                )
            )
            interchange.messages.append(current)
        _check_interchange_trailer(interchange, segment)
        return None

    if current is None:
        if segment.tag not in _ENVELOPE_TAGS:
            interchange.problems.append(
                Problem(SEGMENT_OUTSIDE_MESSAGE, segment.position, segment.tag, "segment outside UNH..UNT")
            )
        return None
    current.segments.append(segment)
    return current


def _count(segment: Segment, message: Message | None) -> int | None:
    text = segment.component(0)
    if text.isdigit():
        return int(text)
    problem = Problem(
        BAD_COUNT_VALUE,
        segment.position,
        segment.tag,
        f"count {text!r} is not a number",
        message.reference if message else None,
        len(message.segments) if message else None,
    )
    (message.problems if message else []).append(problem)
    return None


def _check_trailer(message: Message, unt: Segment) -> None:
    """ISO 9735: UNT counts the segments UNH..UNT inclusive and repeats the UNH reference."""
    count = _count(unt, message)
    actual = len(message.segments)
    if count is not None and count != actual:
        message.problems.append(
            Problem(
                SEGMENT_COUNT_MISMATCH,
                unt.position,
                "UNT",
                f"UNT states {count} segments but message {message.reference} has {actual} (UNH..UNT)",
                message.reference,
                actual,
            )
        )
    reference = unt.component(1)
    if reference != message.reference:
        message.problems.append(
            Problem(
                CONTROL_REFERENCE_MISMATCH,
                unt.position,
                "UNT",
                f"UNT reference {reference!r} differs from UNH reference {message.reference!r}",
                message.reference,
                actual,
            )
        )


def _check_interchange_trailer(interchange: Interchange, unz: Segment) -> None:
    count = _count(unz, None)
    actual = len(interchange.messages)
    if count is not None and count != actual:
        interchange.problems.append(
            Problem(
                MESSAGE_COUNT_MISMATCH,
                unz.position,
                "UNZ",
                f"UNZ states {count} messages but the interchange has {actual}",
            )
        )
    if count is None:
        interchange.problems.append(
            Problem(BAD_COUNT_VALUE, unz.position, "UNZ", f"count {unz.component(0)!r} is not a number")
        )
    reference = unz.component(1)
    if reference != (interchange.control_reference or ""):
        interchange.problems.append(
            Problem(
                CONTROL_REFERENCE_MISMATCH,
                unz.position,
                "UNZ",
                f"UNZ reference {reference!r} differs from UNB reference {interchange.control_reference!r}",
            )
        )


def decode(data: bytes) -> str:
    """Decode interchange bytes: UTF-8 (UNOY, and ASCII for UNOA/UNOB), else ISO 8859-1 (UNOC)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("iso-8859-1")
