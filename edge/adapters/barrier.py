"""The simulated lane barrier: logs each gate decision it acts on, optionally to a file."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from kouan.contract import Command

logger = logging.getLogger(__name__)


class SimulatedBarrier:
    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.actions: list[Command] = []
        self._lock = threading.Lock()

    def __call__(self, command: Command) -> None:
        opens = command.decision == "release"
        logger.info(
            "Barrier %s for passage %s (command %s)",
            "opens" if opens else "stays closed",
            command.passage_id,
            command.command_id,
        )
        with self._lock:
            self.actions.append(command)
            if self.log_path is not None:
                record = {
                    "command_id": str(command.command_id),
                    "decision": command.decision,
                    "passage_id": command.passage_id,
                    "acted_at": datetime.now(UTC).isoformat(),
                }
                with self.log_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
