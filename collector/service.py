"""The collector process: MQTT in, a batch writer process, receipts and acknowledgements out.

Messages are acknowledged to the broker (MQTT 5 manual PUBACK) only after the
transaction that stored them committed, and the receipt to the edge is published
at the same point. A collector killed mid-batch therefore leaves its unacknowledged
messages with the broker, which delivers them again; the ``event_keys`` table makes
that redelivery a no-op.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.correlation.shell import reevaluate_containers
from collector.decisions import database_unavailable_command, peek_decision_request
from collector.inbox import IndexedInbox, mentioned_containers
from collector.ingest import Accepted, Message, Rejected, inspect
from collector.registry import DatabaseRegistry
from collector.settings import CollectorSettings
from collector.store import write_batch
from collector.writer import WriterProcess, WrittenBatch, log_outcome, policy_of
from kouan.contract import TOPIC_ROOT, Command, commands_topic, receipts_topic

logger = logging.getLogger(__name__)

# Session expiry for the collector's persistent MQTT session: events published
# while every collector is down stay queued at the broker for up to a day.
SESSION_EXPIRY_S = 86_400
# Bounded retries of the decision path's write before it gives up at shutdown.
WRITE_ATTEMPTS = 3
RETRY_BACKOFF_S = (0.2, 1.0, 5.0)
STATS_INTERVAL_S = 10.0
# Maximum wait of a decision for an ingest batch that names the same containers.
RELATED_BATCH_WAIT_S = 2.0
# Seconds a connection attempt may take before the decision path sends manual.
DECISION_CONNECT_TIMEOUT_S = 2
# Arbitrary constant key of the advisory lock that lets one collector sweep at a time.
DWELL_SWEEP_LOCK_KEY = 0x6B6F75616E03
# Open visits re-evaluated per sweep transaction at most.
DWELL_SWEEP_BATCH = 500
# The decision thread needs the GIL back after each of its ~15 database round trips.
# With CPython's default 5 ms switch interval, the busy MQTT network thread or batch
# thread could hold it for 5 ms each time, far beyond a decision's 20 ms budget;
# 0.5 ms bounds that wait.
GIL_SWITCH_INTERVAL_S = 0.0005


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.registry = DatabaseRegistry(
            settings.database_url, settings.registry_refresh_s, settings.registry_max_age_s
        )
        self.inbox = IndexedInbox(settings.queue_max_messages)
        # Exit passages that ask for a decision skip the batch queue: their own thread and
        # connection store and decide them one at a time, so a lane never waits behind
        # an ingest batch.
        self.decision_inbox: queue.Queue[tuple[Message, int]] = queue.Queue(settings.decision_queue_max)
        self.policy = policy_of(settings)
        self.writer = WriterProcess(settings)
        self.stop_event = threading.Event()
        self.counters: Counter[str] = Counter()
        self.client = self._make_client()
        self._write_thread = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._decider = threading.Thread(target=self._decide_loop, name="collector-decider", daemon=True)
        self._sweeper = threading.Thread(target=self._sweep_loop, name="collector-dwell-sweep", daemon=True)
        self._decision_conn: psycopg.Connection | None = None
        # The container numbers mentioned by the batch the writer is gathering or
        # writing and has not yet committed, so the decider can wait for that batch
        # when it names the containers being decided.
        self._writing_mentions: set[str] = set()
        self._writing_done = threading.Condition()

    # --- MQTT -----------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        credentials = self.settings.mqtt_credentials()
        if credentials:
            client.username_pw_set(*credentials)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            logger.error("MQTT connection refused: %s", reason_code)
            return

        group, site = self.settings.share_group, self.settings.site_filter
        client.subscribe(
            [
                (f"$share/{group}/{TOPIC_ROOT}/{site}/+/events", 1),
                (f"$share/{group}/{TOPIC_ROOT}/{site}/+/status", 1),
            ]
        )
        logger.info(
            "Connected to %s:%d as %s (session present: %s), subscribed in group %s",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.client_id,
            flags.session_present,
            group,
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not self.stop_event.is_set():
            logger.warning("Disconnected from MQTT broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:  # noqa: ANN001
        is_event = message.topic.endswith("/events")
        received = Message(
            message.topic,
            message.payload,
            message.mid,
            datetime.now(UTC),
            mentioned_containers(message.payload) if is_event else frozenset(),
        )
        # The broker sends at most `receive_maximum` unacknowledged messages, and they
        # are acknowledged after their commit, so a backlog mostly waits here, where an
        # asking exit passage is taken out at once, rather than at the broker behind
        # the ingest traffic. A full inbox blocks the network thread, which stops
        # reading the socket, and the broker holds the rest.
        if is_event and peek_decision_request(message.payload):
            self.decision_inbox.put((received, message.qos))
            return
        self.inbox.put((received, message.qos))

    # --- writer ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        last_stats = time.monotonic()
        while not self.stop_event.is_set() or not self.inbox.empty():
            batch = self._next_batch()
            if batch:
                self._process(batch)
            if time.monotonic() - last_stats >= STATS_INTERVAL_S:
                self._log_stats()
                last_stats = time.monotonic()

    def _next_batch(self) -> list[tuple[Message, int]]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []

        batch = [first]
        with self._writing_done:
            self._writing_mentions = set(first[0].mentions)
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < self.settings.batch_max_events:
            remaining = deadline - time.monotonic()
            try:
                item = self.inbox.get_nowait() if remaining <= 0 else self.inbox.get(timeout=remaining)
            except queue.Empty:
                break
            with self._writing_done:
                batch.append(item)
                self._writing_mentions.update(item[0].mentions)
        return batch

    def _process(self, batch: list[tuple[Message, int]]) -> None:
        try:
            self._process_batch(batch)
        finally:
            with self._writing_done:
                self._writing_mentions = set()
                self._writing_done.notify_all()

    def _process_batch(self, batch: list[tuple[Message, int]]) -> None:
        written = self.writer.write([message for message, _ in batch])
        self._publish_commands(written.commands)
        self._send_receipts(written.receipts)
        for message, qos in batch:
            if qos > 0:
                self.client.ack(message.mid, qos)
        self._count(written)

    # --- decisions ------------------------------------------------------------------

    def _decide_loop(self) -> None:
        while not self.stop_event.is_set() or not self.decision_inbox.empty():
            try:
                message, qos = self.decision_inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._decide_one(message, qos)

    def _decide_one(self, message: Message, qos: int) -> None:
        """Store one asking passage, decide it and publish the decision, in that order.

        While the database is unreachable the lane gets ``manual`` at once; that same
        decision is recorded with the passage when the database is back.
        """
        began = time.monotonic()
        queued_ms = (datetime.now(UTC) - message.received_at).total_seconds() * 1000
        outcome = inspect(message, self.registry)
        related = self._take_related(outcome.container_numbers) if isinstance(outcome, Accepted) else []
        gathered = time.monotonic()
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for item in [*(inspect(queued, self.registry) for queued, _ in related), outcome]:
            (accepted if isinstance(item, Accepted) else rejected).append(item)
        preset: dict[str, Command] = {}

        attempt = 0
        while True:
            try:
                conn = self._decision_connection()
                with conn.transaction():
                    result = write_batch(conn, accepted, rejected, self.policy, preset)
                break
            except psycopg.OperationalError as exc:
                self._drop_decision_connection()
                if isinstance(outcome, Accepted) and not preset:
                    preset = self._answer_manual(outcome)
                logger.error("Database unreachable for passage %s (%s); retrying", message.topic, exc)
                if self.stop_event.is_set() and attempt >= WRITE_ATTEMPTS:
                    return  # not acknowledged: the broker delivers it again
                time.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
                attempt += 1
            except psycopg.Error as exc:
                logger.warning(
                    "Passage on %s failed on the decision path (%s); sent to the batch path",
                    message.topic,
                    exc,
                )
                for item in [*related, (message, qos)]:
                    self.inbox.put(item)
                return

        already_sent = {command.command_id for command in preset.values()}
        self._publish_commands([item for item in result.commands if item[1].command_id not in already_sent])
        transit_ms = (
            (message.received_at - outcome.envelope.sent_at).total_seconds() * 1000
            if isinstance(outcome, Accepted)
            else float("nan")
        )
        logger.info(
            "Passage on %s: %.1f ms from the lane's sent_at to receipt, %.1f ms queued in the collector, "
            "%.1f ms gathering %d related events, %.1f ms storing and deciding",
            message.topic,
            transit_ms,
            queued_ms,
            (gathered - began) * 1000,
            len(related),
            (time.monotonic() - gathered) * 1000,
        )
        self._send_receipts(result.receipted())
        for acked, acked_qos in [*related, (message, qos)]:
            if acked_qos > 0:
                self.client.ack(acked.mid, acked_qos)
        log_outcome(result)
        self._count(WrittenBatch.of(result, 0))

    def _take_related(self, numbers: list[str]) -> list[tuple[Message, int]]:
        """Take the queued events that name any of these containers, to store them first.

        An e-seal report or scan result received just before an exit passage may still
        wait in the ingest inbox, or in the batch being written, when the passage requests
        its decision. Deciding without it could release a container whose seal was
        reported tampered. Events from the inbox are moved into the decision's own
        transaction; a batch in progress that names the containers is waited for (at
        most ``RELATED_BATCH_WAIT_S``). Other traffic is never waited for.
        """
        if not numbers:
            return []
        requested = set(numbers)
        with self._writing_done:
            self._writing_done.wait_for(
                lambda: requested.isdisjoint(self._writing_mentions), RELATED_BATCH_WAIT_S
            )
        return self.inbox.take_naming(numbers)

    def _answer_manual(self, item: Accepted) -> dict[str, Command]:
        command = database_unavailable_command(
            item.envelope.device_id, item.envelope.payload, datetime.now(UTC), self.settings.decision_valid_s
        )
        self._publish_commands([(item.envelope.site_id, command)])
        return {str(item.envelope.event_id): command}

    def _decision_connection(self) -> psycopg.Connection:
        if self._decision_conn is None or self._decision_conn.closed:
            self._decision_conn = psycopg.connect(
                self.settings.database_url, autocommit=True, connect_timeout=DECISION_CONNECT_TIMEOUT_S
            )
        return self._decision_conn

    def _drop_decision_connection(self) -> None:
        if self._decision_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._decision_conn.close()
        self._decision_conn = None

    def _publish_commands(self, commands: list[tuple[str, Command]]) -> None:
        for site_id, command in commands:
            self.client.publish(commands_topic(site_id, command.device_id), command.model_dump_json(), qos=1)
            logger.info(
                "Decision %s for lane %s passage %s (%s): %s %s",
                command.command_id,
                command.lane_id,
                command.passage_id,
                ", ".join(command.container_numbers) or "no container",
                command.decision,
                ", ".join(reason["code"] for reason in command.reasons),
            )

    # --- dwell sweep ----------------------------------------------------------------

    def _sweep_loop(self) -> None:
        """Re-evaluate open visits that have stayed past the dwell limit, as time passes."""
        while not self.stop_event.wait(self.settings.dwell_sweep_interval_s):
            try:
                swept = self.sweep_dwell()
            except psycopg.Error as exc:
                logger.warning(
                    "Dwell sweep failed (%s); next sweep in %.0f s", exc, self.settings.dwell_sweep_interval_s
                )
                continue
            if swept:
                logger.info("Dwell sweep re-evaluated %d visits", swept)

    def sweep_dwell(self) -> int:
        """Re-evaluate, through the pure core, open visits that entered before now minus the limit."""
        now = datetime.now(UTC)
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn, conn.transaction():
            (mine,) = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (DWELL_SWEEP_LOCK_KEY,)).fetchone()  # type: ignore[misc]
            if not mine:
                return 0
            rows = conn.execute(
                """
                SELECT v.site_id, v.container_number FROM container_visits v
                WHERE v.exited_at IS NULL AND v.first_seen_at < %(now)s - make_interval(secs => %(limit_s)s)
                  AND (%(site)s = '+' OR v.site_id = %(site)s)
                  AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.subject_kind = 'visit'
                                  AND a.subject_id = v.visit_id::text AND a.rule_code = 'dwell_exceeded')
                ORDER BY v.first_seen_at LIMIT %(limit)s
                """,
                {
                    "now": now,
                    "limit_s": self.settings.dwell_limit_hours * 3600,
                    "site": self.settings.site_filter,
                    "limit": DWELL_SWEEP_BATCH,
                },
            ).fetchall()
            by_site: dict[str, list[str]] = {}
            for site_id, number in rows:
                by_site.setdefault(site_id, []).append(number.strip())
            return sum(
                reevaluate_containers(conn, site_id, numbers, self.policy.rules, now)
                for site_id, numbers in sorted(by_site.items())
            )

    def _send_receipts(self, receipts: dict[tuple[str, str], list[int]]) -> None:
        committed_at = datetime.now(UTC).isoformat()
        for (site_id, device_id), seqs in receipts.items():
            body = {"device_id": device_id, "seqs": sorted(seqs), "committed_at": committed_at}
            self.client.publish(receipts_topic(site_id, device_id), json.dumps(body), qos=1)

    def _count(self, written: WrittenBatch) -> None:
        self.counters["stored"] += written.stored
        self.counters["duplicates"] += written.duplicates
        self.counters["quarantined"] += written.quarantined
        self.counters["statuses"] += written.statuses

    def _log_stats(self) -> None:
        if self.counters:
            logger.info(
                "Ingest totals: %d stored, %d duplicates, %d quarantined, inbox %d",
                self.counters["stored"],
                self.counters["duplicates"],
                self.counters["quarantined"],
                self.inbox.qsize(),
            )

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.registry.reload()
        self.writer.start()
        self._write_thread.start()
        self._decider.start()
        self._sweeper.start()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = self.settings.receive_maximum
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()
        logger.info("Collector %s started", self.settings.client_id)

    def stop(self) -> None:
        self.stop_event.set()
        self._write_thread.join(timeout=30)
        self._decider.join(timeout=30)
        self.writer.stop()
        self.client.disconnect()
        self.client.loop_stop()
        self._drop_decision_connection()
        logger.info("Collector %s stopped: %s", self.settings.client_id, dict(self.counters))


def run(settings: CollectorSettings) -> None:
    """Run a collector until SIGINT or SIGTERM."""
    import signal

    collector = Collector(settings)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    collector.start()
    stopping.wait()
    collector.stop()
