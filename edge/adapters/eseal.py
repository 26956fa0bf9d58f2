"""E-seal (ISO 18185) reader adapter: status bits decoded into ``seal.status`` events.

Accepted frame, one per line from the reader's TCP port::

    ESEAL,<seal id>,<long status hex>,<CCYYMMDDHHMM>[,<container number>]
    ESEAL,QWER85723456,A1000000,202403151230,CSQU3054383

- seal id: 4 letters and 8 digits, the text form of the seal's manufacturer id and
  serial (Hi-G-Tek DataSeal user manual, section 5.3.2).
- long status: 32 bits in hex, bits as in the Hi-G-Tek DataReader manual UM4710
  (the short status is its top byte): ``0x80000000`` tampered (latched: it stays
  set after the wire is closed again, until the seal is re-armed), ``0x40000000``
  low battery, ``0x20000000`` opened (the wire is open now; the seal always sets
  tampered with it), ``0x01000000`` approved opening (the opening was approved by
  command beforehand), ``0x00800000`` life counter exhausted (the seal writes no
  more event records).
- time: ISO 18185's CCYYMMDDHHMM, always UTC, minute resolution.

A frame with opened but not tampered contradicts the seal's own rule and is
rejected as invalid, as is a malformed seal id, status or time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

TAMPERED = 0x80000000
BATTERY_LOW = 0x40000000
OPENED = 0x20000000
APPROVED_OPENING = 0x01000000
LIFE_COUNTER_ZERO = 0x00800000

SEAL_ID = re.compile(r"^[A-Z]{4}\d{8}$")
STATUS = re.compile(r"^(?:0x)?[0-9A-Fa-f]{1,8}$")
TIME = re.compile(r"^\d{12}$")


class ESealFrameError(ValueError):
    """A reader line is not a valid e-seal frame."""


@dataclass(frozen=True)
class ESealReading:
    seal_id: str
    status: int
    read_at: datetime
    container_number: str | None

    @property
    def tampered(self) -> bool:
        return bool(self.status & TAMPERED)

    @property
    def opened(self) -> bool:
        return bool(self.status & OPENED)

    @property
    def approved_opening(self) -> bool:
        return bool(self.status & APPROVED_OPENING)

    @property
    def battery_low(self) -> bool:
        return bool(self.status & BATTERY_LOW)

    @property
    def life_counter_exhausted(self) -> bool:
        return bool(self.status & LIFE_COUNTER_ZERO)

    @property
    def state(self) -> str:
        """Return SEALED, TAMPERED, OPENED_TAMPERED or OPENED_APPROVED."""
        if self.opened:
            return "OPENED_APPROVED" if self.approved_opening else "OPENED_TAMPERED"
        return "TAMPERED" if self.tampered else "SEALED"


def parse_eseal_frame(line: str) -> ESealReading:
    fields = [part.strip() for part in line.strip().split(",")]
    if len(fields) not in (4, 5) or fields[0].upper() != "ESEAL":
        raise ESealFrameError(
            f"e-seal frame {line[:60]!r} is not 'ESEAL,<seal id>,<status>,<time>[,<container>]'"
        )

    seal_id, status_text, time_text = fields[1].upper(), fields[2], fields[3]
    if not SEAL_ID.match(seal_id):
        raise ESealFrameError(f"seal id {fields[1]!r} is not 4 letters and 8 digits")
    if not STATUS.match(status_text):
        raise ESealFrameError(f"status {status_text!r} is not a 32-bit hex value")
    if not TIME.match(time_text):
        raise ESealFrameError(f"time {time_text!r} is not CCYYMMDDHHMM")
    try:
        read_at = datetime.strptime(time_text, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ESealFrameError(f"time {time_text!r} is not a valid date and time") from exc

    status = int(status_text, 16)
    if status & OPENED and not status & TAMPERED:
        raise ESealFrameError(
            f"status {status:08X} of seal {seal_id} has opened without tampered, which a seal never reports"
        )
    container = fields[4].upper() if len(fields) == 5 and fields[4] else None
    return ESealReading(seal_id, status, read_at, container)


def seal_status_payload(reading: ESealReading, reader_id: str) -> dict[str, Any]:
    """Return the ``seal.status`` payload of one reading.

    ``sealed`` is whether the wire is closed now. A latched ``tampered`` stays true
    on a closed wire, so a later frame with the wire closed never hides an earlier
    tampering.
    """
    read = {
        "raw": reading.seal_id,
        "source": "eseal",
        "sensor_id": reader_id,
        "read_at": reading.read_at.isoformat(),
    }
    payload: dict[str, Any] = {
        "seal_number": read,
        "sealed": not reading.opened,
        "opened": reading.opened,
        "tampered": reading.tampered,
        "approved_opening": reading.approved_opening,
        "battery_low": reading.battery_low,
        "status_flags": f"{reading.status:08X}",
    }
    if reading.container_number:
        payload["container_number"] = {
            "raw": reading.container_number,
            "source": "eseal",
            "sensor_id": reader_id,
        }
    return payload
