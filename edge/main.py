"""``kouan edge DEVICE``: run one device's edge agent with the adapters its settings configure."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.adapters.barrier import SimulatedBarrier
from edge.adapters.eseal import ESealFrameError, parse_eseal_frame, seal_status_payload
from edge.adapters.http_camera import CameraEndpoint, FrameRouter
from edge.adapters.lane import LaneFusion
from edge.adapters.simulated import simulated_passages
from edge.adapters.tcp import LineReader
from edge.adapters.weighbridge import StableWeight
from edge.agent import EdgeAgent
from edge.commands import CommandHandler
from edge.outbox import OutboxFull
from edge.settings import EdgeSettings
from kouan.devices import DeviceIdentity

logger = logging.getLogger(__name__)


class EdgeRuntime:
    """The agent and its adapters for one device, started and stopped together."""

    def __init__(self, settings: EdgeSettings, identity: DeviceIdentity | None = None) -> None:
        self.settings = settings
        self.identity = identity or DeviceIdentity.load(settings.home, settings.device_id)
        self.agent = EdgeAgent(self.identity, settings)
        self.stop_event = threading.Event()
        self.fusion: LaneFusion | None = None
        if self.identity.kind == "lane" and self.identity.lane_id:
            self.fusion = LaneFusion(
                self.identity.lane_id, settings.lane_direction, self._emit_passage, settings.passage_timeout_s
            )
        barrier_log = Path(settings.barrier_log) if settings.barrier_log else None
        self.barrier = SimulatedBarrier(barrier_log)
        self.commands = CommandHandler(
            self.identity,
            DeviceIdentity.directory(settings.home, self.identity.device_id) / "commands.sqlite3",
            self.barrier,
            self._report_command,
            self.fusion.passage_containers if self.fusion else None,
        )
        self.agent.on_command = self.commands.handle
        self.endpoint: CameraEndpoint | None = None
        self.readers: list[LineReader] = []
        self._threads: list[threading.Thread] = []

    def _emit_passage(self, payload: dict[str, Any], occurred_at: datetime) -> int:
        return self.agent.emit("gate.passage", payload, occurred_at=occurred_at)

    def _report_command(self, result: dict[str, Any]) -> None:
        try:
            self.agent.emit("command.result", result, occurred_at=datetime.now().astimezone())
        except OutboxFull:
            logger.error(
                "Device %s: command result %s not reported: outbox full", self.identity.device_id, result
            )

    def _on_eseal_line(self, line: str) -> None:
        try:
            reading = parse_eseal_frame(line)
        except ESealFrameError as exc:
            logger.warning("E-seal reader of %s: invalid frame: %s", self.identity.device_id, exc)
            return

        if reading.life_counter_exhausted:
            logger.warning("E-seal %s: life counter exhausted; the seal logs no more events", reading.seal_id)
        payload = seal_status_payload(reading, f"{self.identity.device_id}-eseal"[:64])
        self.agent.emit("seal.status", payload, occurred_at=reading.read_at)
        if self.fusion is not None:
            self.fusion.add_seal(payload["seal_number"], reading.container_number)

    def start(self) -> None:
        self.agent.start()
        settings = self.settings
        if settings.http_port is not None:
            self.endpoint = CameraEndpoint(
                settings.http_host, settings.http_port, FrameRouter(self.agent, self.fusion)
            )
            self.endpoint.start()
        if settings.weighbridge_host and settings.weighbridge_port and self.fusion is not None:
            stable = StableWeight(
                f"{self.identity.device_id}-scale"[:64],
                settings.weighbridge_stable_frames,
                self.fusion.add_weight,
            )
            self.readers.append(
                LineReader("weighbridge", settings.weighbridge_host, settings.weighbridge_port, stable.feed)
            )
        if settings.eseal_host and settings.eseal_port:
            self.readers.append(
                LineReader("eseal-reader", settings.eseal_host, settings.eseal_port, self._on_eseal_line)
            )
        for reader in self.readers:
            reader.start()
        if self.fusion is not None:
            self._spawn("passage-timeout", self._expire_passages)
            if settings.simulated:
                self._spawn(
                    "simulated-lane",
                    lambda: simulated_passages(self.fusion, self.stop_event, settings.simulated_interval_s),  # type: ignore[arg-type]
                )
        logger.info(
            "Edge agent for %s started (camera endpoint %s, weighbridge %s, e-seal reader %s, simulated %s)",
            self.identity.device_id,
            settings.http_port or "off",
            f"{settings.weighbridge_host}:{settings.weighbridge_port}"
            if settings.weighbridge_port
            else "off",
            f"{settings.eseal_host}:{settings.eseal_port}" if settings.eseal_port else "off",
            settings.simulated,
        )

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _expire_passages(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                self.fusion.expire()  # type: ignore[union-attr]
            except OutboxFull as exc:
                logger.error("Device %s: timed-out passage not stored: %s", self.identity.device_id, exc)

    def stop(self) -> None:
        self.stop_event.set()
        if self.endpoint is not None:
            self.endpoint.stop()
        for reader in self.readers:
            reader.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.agent.stop()
        self.commands.close()


def run(settings: EdgeSettings) -> None:
    runtime = EdgeRuntime(settings)
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: runtime.stop_event.set())
    runtime.start()
    runtime.stop_event.wait()
    runtime.stop()
