"""Run several collector processes side by side and restart any that dies.

One collector process keeps one core busy: its writer process parses, verifies,
stores and correlates, one batch at a time. More processes in the same shared
subscription group share the broker's messages, and the database serialises what
they change together (advisory locks per container), so a machine with more cores
runs one collector per core.

Each process gets its own MQTT client id, ``{client_id}-{n}``, stable across
restarts so that the broker keeps each session's queued messages for it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

logger = logging.getLogger(__name__)

# A process that dies is started again after this pause, so that a process
# failing at start-up does not spin.
RESTART_DELAY_S = 2.0
STOP_TIMEOUT_S = 40.0


def child_client_id(client_id: str, index: int) -> str:
    return f"{client_id}-{index}"


def run_processes(count: int, client_id: str) -> int:
    """Run ``count`` collector processes until SIGINT or SIGTERM; return the exit code."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    children: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        env = {**os.environ, "KOUAN_CLIENT_ID": child_client_id(client_id, index)}
        children[index] = subprocess.Popen(
            [sys.executable, "-m", "kouan", "collector", "--processes", "1"],
            # Same process group: Ctrl-C in a terminal, or a signal to the group,
            # reaches every collector process, and each stops on its own.
            env=env,
        )
        logger.info("Collector process %s started (pid %d)", env["KOUAN_CLIENT_ID"], children[index].pid)

    for index in range(1, count + 1):
        start(index)
    while not stopping.wait(0.5):
        for index, child in list(children.items()):
            code = child.poll()
            if code is not None:
                logger.error(
                    "Collector process %s exited with code %d; starting it again in %.0f s",
                    child_client_id(client_id, index),
                    code,
                    RESTART_DELAY_S,
                )
                if stopping.wait(RESTART_DELAY_S):
                    break
                start(index)

    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.error("Collector process %d did not stop within %.0f s; killed", child.pid, STOP_TIMEOUT_S)
            child.kill()
    logger.info("Collector processes stopped")
    return 0
