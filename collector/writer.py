"""The batch writer, in a process of its own beside the collector's MQTT client.

Inspecting and storing a batch (JSON, Ed25519, pydantic, COPY, correlation) is
CPU-bound Python. Run as a thread of the collector process, it held the GIL that
the exit-passage decisions and the MQTT network thread also need, and under full
ingest a decision waited hundreds of milliseconds for it. In a child process it
competes only for the CPU. It also lowers its own scheduling priority
(``KOUAN_WRITER_NICE``), so that decisions, the API and the database come first when
the cores are saturated, while the broker and the edge outboxes absorb the backlog.

The parent sends a batch of received messages and receives what to publish and
acknowledge once the transaction has committed. Nothing is acknowledged before that
reply, so a writer that dies mid-batch loses nothing: the parent starts another and
sends the batch again, and ``event_keys`` makes whatever was committed a no-op.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe

import psycopg
from psycopg.types.json import Jsonb

from collector import health
from collector.ingest import Accepted, Message, Rejected, inspect
from collector.registry import DatabaseRegistry
from collector.settings import CollectorSettings
from collector.store import BatchResult, DecisionPolicy, write_batch
from kouan.contract import Command, split_topic

logger = logging.getLogger(__name__)

# Bounded retries of a failing database write before the batch is split up.
WRITE_ATTEMPTS = 3
RETRY_BACKOFF_S = (0.2, 1.0, 5.0)
# Pause before a writer process that died is started again.
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 30.0


@dataclass
class WrittenBatch:
    """Outcome of a committed batch: the commands and receipts to publish, and the counts."""

    commands: list[tuple[str, Command]] = field(default_factory=list)
    receipts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    statuses: int = 0

    @classmethod
    def of(cls, result: BatchResult, statuses: int) -> WrittenBatch:
        return cls(
            commands=result.commands,
            receipts=dict(result.receipted()),
            stored=len(result.stored),
            duplicates=len(result.duplicates),
            quarantined=len(result.quarantined),
            statuses=statuses,
        )


def log_outcome(result: BatchResult) -> None:
    """Log each quarantined message and, at debug level, the batch's counts."""
    for item in result.quarantined:
        logger.warning(
            "Quarantined message on %s: %s (%s)", item.message.topic, item.reason_code, item.reason[:200]
        )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "Batch: %d stored, %d duplicates, %d quarantined, %d visits",
            len(result.stored),
            len(result.duplicates),
            len(result.quarantined),
            result.visits_written,
        )


class BatchWriter:
    """Inspect and store batches on one database connection (runs in the writer process)."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.registry = DatabaseRegistry(
            settings.database_url, settings.registry_refresh_s, settings.registry_max_age_s
        )
        self.policy = policy_of(settings)
        self._conn: psycopg.Connection | None = None

    def write(self, batch: list[Message]) -> WrittenBatch:
        statuses = [message for message in batch if message.topic.endswith("/status")]
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for message in batch:
            if message.topic.endswith("/status"):
                continue
            outcome = inspect(message, self.registry)
            (accepted if isinstance(outcome, Accepted) else rejected).append(outcome)

        result = self._store(accepted, rejected, statuses)
        log_outcome(result)
        return WrittenBatch.of(result, len(statuses))

    def _store(
        self, accepted: list[Accepted], rejected: list[Rejected], statuses: list[Message]
    ) -> BatchResult:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                conn = self._connection()
                with conn.transaction():
                    result = write_batch(conn, accepted, rejected, self.policy)
                    store_statuses(conn, statuses)
                return result
            except psycopg.OperationalError as exc:
                logger.warning("Database write failed (attempt %d): %s", attempt + 1, exc)
                self.close()
                time.sleep(RETRY_BACKOFF_S[attempt])
            except psycopg.Error as exc:
                logger.warning("Batch of %d events failed (%s); writing them one by one", len(accepted), exc)
                return self._store_one_by_one(accepted, rejected, statuses)
        return self._wait_for_database(accepted, rejected, statuses)

    def _wait_for_database(
        self, accepted: list[Accepted], rejected: list[Rejected], statuses: list[Message]
    ) -> BatchResult:
        """Keep retrying while the database is down: nothing is acknowledged meanwhile."""
        logger.error("Database unreachable; holding %d events unacknowledged until it returns", len(accepted))
        while True:
            time.sleep(RETRY_BACKOFF_S[-1])
            try:
                conn = self._connection()
                with conn.transaction():
                    result = write_batch(conn, accepted, rejected, self.policy)
                    store_statuses(conn, statuses)
                logger.info("Database reachable again; batch of %d events stored", len(accepted))
                return result
            except psycopg.OperationalError as exc:
                logger.error("Database still unreachable: %s", exc)
                self.close()

    def _store_one_by_one(
        self, accepted: list[Accepted], rejected: list[Rejected], statuses: list[Message]
    ) -> BatchResult:
        total = BatchResult()
        conn = self._connection()
        for item in accepted:
            try:
                with conn.transaction():
                    result = write_batch(conn, [item], [], self.policy)
                total.stored += result.stored
                total.commands += result.commands
                total.duplicates += result.duplicates
                total.quarantined += result.quarantined
            except psycopg.Error as exc:
                logger.warning(
                    "Event device %s seq %d could not be stored (%s); quarantined",
                    item.envelope.device_id,
                    item.envelope.seq,
                    exc,
                )
                total.quarantined.append(
                    Rejected(
                        item.message,
                        "store_failed",
                        f"database rejected the event: {exc}",
                        item.envelope.device_id,
                        item.envelope.seq,
                    )
                )
        with conn.transaction():
            write_batch(
                conn, [], [*rejected, *[q for q in total.quarantined if q.reason_code == "store_failed"]]
            )
            store_statuses(conn, statuses)
        total.quarantined = [*rejected, *total.quarantined]
        return total

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.settings.database_url, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                logger.debug("Closing a broken database connection failed", exc_info=True)
        self._conn = None


def policy_of(settings: CollectorSettings) -> DecisionPolicy:
    return DecisionPolicy(
        settings.rule_settings(),
        settings.stale_sensor_s,
        settings.decision_valid_s,
        settings.clock_drift_limit_s,
    )


def store_statuses(conn: psycopg.Connection, statuses: list[Message]) -> None:
    for message in statuses:
        where = split_topic(message.topic)
        if where is None:
            continue
        try:
            status = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("Status message on %s is not JSON; ignored", message.topic)
            continue
        health.check_status(conn, where[0], where[1], status, message.received_at)
        conn.execute(
            "UPDATE devices SET status = %s, status_at = %s WHERE device_id = %s AND site_id = %s",
            (Jsonb(status), message.received_at, where[1], where[0]),
        )


def _writer_main(settings: CollectorSettings, pipe: Pipe, log_level: str) -> None:
    """Run the writer process: write each batch received and send back its outcome.

    The process leaves the collector's process group first. Ctrl-C or a SIGTERM to the
    group then reaches only the collector, which finishes its batches through this
    process and stops it by sending ``None``. If the collector dies, the pipe closes
    and this process ends after the batch in hand.
    """
    os.setsid()
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s[writer]: %(message)s", force=True
    )
    if settings.writer_nice > 0:
        try:
            os.nice(settings.writer_nice)
        except OSError as exc:
            logger.warning("Cannot lower the writer's priority: %s", exc)
    writer = BatchWriter(settings)
    try:
        while True:
            try:
                batch = pipe.recv()
            except EOFError:
                return  # the collector is gone
            if batch is None:
                return
            outcome = writer.write(batch)
            try:
                pipe.send(outcome)
            except OSError:
                return  # the collector is gone; its messages stay unacknowledged
    finally:
        writer.close()


class WriterProcess:
    """The parent's handle on the writer process: send a batch, wait for its outcome."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        # spawn, not fork: the parent already runs the MQTT client's threads.
        self._context = mp.get_context("spawn")
        self._process: mp.process.BaseProcess | None = None
        self._pipe: Pipe | None = None

    def start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        process = self._context.Process(
            target=_writer_main,
            args=(self.settings, child_end, level),
            name="kouan-collector-writer",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._pipe = process, parent_end
        logger.info("Batch writer process started (pid %d)", process.pid)

    def write(self, batch: list[Message]) -> WrittenBatch:
        """Write ``batch`` in the writer process; start a new one if it died, and retry."""
        while True:
            assert self._pipe is not None
            try:
                self._pipe.send(batch)
                return self._pipe.recv()  # type: ignore[no-any-return]
            except (EOFError, OSError) as exc:
                code = self._process.exitcode if self._process is not None else None
                logger.error(
                    "Batch writer process died (%s, exit code %s); starting another for the batch of %d",
                    exc or type(exc).__name__,
                    code,
                    len(batch),
                )
                self._discard()
                time.sleep(RESTART_DELAY_S)
                self.start()

    def stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send(None)
        if self._process is not None:
            self._process.join(STOP_TIMEOUT_S)
        self._discard()

    def _discard(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        if self._pipe is not None:
            self._pipe.close()
        self._process, self._pipe = None, None
