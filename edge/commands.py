"""Gate decisions arriving at a lane: acted on at most once, never late, never misaddressed.

A command's ``command_id`` is committed to a local SQLite table before the barrier
acts, so a redelivery (QoS 1, a persistent session replayed after reconnect, a
restart of the agent) finds it and is rejected as a duplicate. A crash between the
commit and the barrier's action leaves the command unacted, which is the safe side
of "at most once": the lane falls back to its manual procedure.

Every outcome is reported as a ``command.result`` event through the outbox.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kouan.contract import Command
from kouan.devices import DeviceIdentity

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS commands_seen (
    command_id   TEXT PRIMARY KEY,
    received_at  REAL NOT NULL,
    outcome      TEXT NOT NULL
);
"""

Barrier = Callable[[Command], None]
Report = Callable[[dict[str, Any]], None]
# Returns the container numbers of a passage this lane emitted, or None when the
# lane does not know the passage.
PassageLookup = Callable[[str], set[str] | None]


class CommandHandler:
    def __init__(
        self,
        identity: DeviceIdentity,
        path: Path,
        barrier: Barrier,
        report: Report,
        passage_containers: PassageLookup | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.barrier = barrier
        self.report = report
        self.passage_containers = passage_containers
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def handle(self, body: dict[str, Any], now: datetime | None = None) -> str:
        """Check one command, act on it if it passes, report the outcome; return the outcome."""
        now = now or datetime.now(UTC)
        try:
            command = Command.model_validate(body)
        except ValidationError as exc:
            reason = f"command does not follow the contract: {exc.errors()[0]['msg']}"
            return self._reject(str(body.get("command_id", ""))[:64], None, "invalid", reason)

        misaddressed = self._misaddressed(command)
        if misaddressed:
            return self._reject(str(command.command_id), command, "misaddressed", misaddressed)
        if now >= command.valid_until:
            reason = f"valid until {command.valid_until.isoformat()}, received {now.isoformat()}"
            return self._reject(str(command.command_id), command, "expired", reason)
        if not self._claim(str(command.command_id)):
            return self._reject(str(command.command_id), command, "duplicate", "command_id already received")

        logger.info(
            "Device %s: acting on command %s: %s for passage %s (%s)",
            self.identity.device_id,
            command.command_id,
            command.decision,
            command.passage_id,
            ", ".join(command.container_numbers),
        )
        self.barrier(command)
        self._report(str(command.command_id), command, "acted", "")
        return "acted"

    def _misaddressed(self, command: Command) -> str | None:
        if command.device_id != self.identity.device_id:
            return f"addressed to device {command.device_id}, this is {self.identity.device_id}"
        if command.lane_id != self.identity.lane_id:
            return f"addressed to lane {command.lane_id}, this is lane {self.identity.lane_id}"
        if self.passage_containers is None:
            return None

        known = self.passage_containers(command.passage_id)
        if known is not None and set(command.container_numbers) != known:
            return (
                f"containers {sorted(command.container_numbers)} are not those of passage "
                f"{command.passage_id} ({sorted(known)})"
            )
        return None

    def _claim(self, command_id: str, outcome: str = "acted") -> bool:
        """Commit the command_id; return False when it was already there."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO commands_seen (command_id, received_at, outcome) VALUES (?, ?, ?)",
                (command_id, datetime.now(UTC).timestamp(), outcome),
            )
        return cursor.rowcount == 1

    def _reject(self, command_id: str, command: Command | None, outcome: str, reason: str) -> str:
        logger.warning(
            "Device %s: command %s rejected (%s): %s", self.identity.device_id, command_id, outcome, reason
        )
        self._report(command_id, command, outcome, reason)
        return outcome

    def _report(self, command_id: str, command: Command | None, outcome: str, reason: str) -> None:
        self.report(
            {
                "command_id": command_id,
                "lane_id": self.identity.lane_id,
                "outcome": outcome,
                "decision": command.decision if command else None,
                "reason": reason[:500],
            }
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
