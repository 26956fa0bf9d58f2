"""Carry a day plan out through the real pipeline.

Each lane and scanner is a provisioned device with a real :class:`EdgeAgent`
(SQLite outbox, signing, MQTT) that reaches the broker through a :class:`LinkProxy`.
Declarations are filed and changed through the real API. Simulated time runs
``speed`` times faster than real time; ``occurred_at`` follows the simulated clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from edge.settings import EdgeSettings
from kouan.contract import events_topic, new_envelope
from kouan.devices import DeviceIdentity, ensure_lane, ensure_site, provision
from kouan.settings import CommonSettings
from kouan.signing import generate_private_key, load_private_key, sign
from simulators.api_client import ensure_api_key, send
from simulators.links import DeviceFaults, LinkProxy, SimulatedDeviceAgent
from simulators.plan import HEARTBEAT_INTERVAL, DayPlan, FaultPlan, TruckPlan
from simulators.truth import ledger_path, write_truth

logger = logging.getLogger(__name__)

# Seconds to wait for every outbox to drain after the last action. An outage near the
# end of the day adds the agent's reconnect backoff, capped at 2 s for simulated devices.
DRAIN_TIMEOUT_S = 90.0
# Seq numbers for hand-built malformed envelopes: far above any real device's seq,
# so a quarantined one can never be mistaken for a real event.
MALFORMED_SEQ_BASE = 2**40
# Seconds between a simulated device's status messages: a clock fault of a few
# simulated minutes lasts a few real seconds, and the status carries the clock.
STATUS_INTERVAL_S = 1.0
# The lane's e-seal reader reads the seal as the truck queues, this long before the
# passage closes. Its report therefore reaches the collector before the decision request.
ESEAL_READ_LEAD = timedelta(seconds=60)


@dataclass(order=True)
class Action:
    at: datetime
    order: int
    kind: str = field(compare=False)
    truck: TruckPlan | None = field(default=None, compare=False)
    fault: FaultPlan | None = field(default=None, compare=False)
    lane: str | None = field(default=None, compare=False)
    status: str | None = field(default=None, compare=False)


@dataclass
class Ledger:
    """Record of what this run sent and what reached the lanes."""

    started_at: str
    api_url: str
    site_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    declaration_writes: int = 0
    declaration_errors: list[str] = field(default_factory=list)
    raw_messages: list[dict[str, Any]] = field(default_factory=list)
    lane_commands: list[dict[str, Any]] = field(default_factory=list)
    outbox_left: dict[str, int] = field(default_factory=dict)
    finished_at: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        left = sum(self.outbox_left.values())
        return (
            f"Sent {len(self.events)} events from {len({e['device_id'] for e in self.events})} devices "
            f"and {len(self.raw_messages)} injected raw messages; {self.declaration_writes} declaration "
            f"writes ({len(self.declaration_errors)} failed); {len(self.lane_commands)} gate decisions "
            f"reached the lanes; {left} events still in edge outboxes; {self.seconds:.0f} s."
        )


def build_actions(plan: DayPlan) -> list[Action]:
    """Return every step of the plan in simulated-time order."""
    actions: list[Action] = []
    for truck in plan.trucks:
        if truck.declaration is not None:
            for index, (when, status) in enumerate(truck.declaration.lifecycle):
                kind = "declare" if index == 0 else "declaration_status"
                actions.append(Action(max(when, plan.start), 0, kind, truck=truck, status=status))
        if any(item.eseal for item in truck.containers):
            actions.append(Action(truck.arrive_at - ESEAL_READ_LEAD, 2, "eseal_entry", truck=truck))
            if truck.exit_at is not None:
                actions.append(Action(truck.exit_at - ESEAL_READ_LEAD, 4, "eseal_exit", truck=truck))
        actions.append(Action(truck.arrive_at, 2, "arrive", truck=truck))
        if truck.scan_at is not None:
            actions.append(Action(truck.scan_at, 3, "scan", truck=truck))
        if truck.exit_at is not None:
            actions.append(Action(truck.exit_at, 4, "exit", truck=truck))

    for fault in plan.faults:
        if fault.kind == "link_outage":
            actions.append(Action(fault.at, 1, "link_cut", fault=fault))
            actions.append(Action(fault.until or fault.at, 1, "link_restore", fault=fault))
        elif fault.kind == "clock_skew":
            actions.append(Action(fault.at, 1, "clock_skew_start", fault=fault))
            actions.append(Action(fault.until or fault.at, 1, "clock_skew_end", fault=fault))
        elif fault.kind in ("malformed_payload", "forged_device"):
            actions.append(Action(fault.at, 5, fault.kind, fault=fault))

    moment = plan.start
    while moment <= plan.end:
        for lane, _ in plan.lanes():
            actions.append(Action(moment, 6, "heartbeat", lane=lane))
        moment += HEARTBEAT_INTERVAL
    return sorted(actions)


class PortDayRun:
    """One run of a day plan against a running broker, collector and API."""

    def __init__(self, settings: CommonSettings, api_url: str, plan: DayPlan, speed: float) -> None:
        self.settings = settings
        self.plan = plan
        self.speed = speed
        self.site = plan.scenario.site
        self.http = httpx.Client(base_url=api_url, timeout=30)
        self.agents: dict[str, SimulatedDeviceAgent] = {}
        self.faults: dict[str, DeviceFaults] = {}
        self.proxies: dict[str, LinkProxy] = {}
        self.identities: dict[str, DeviceIdentity] = {}
        self.ledger = Ledger(datetime.now(UTC).isoformat(), api_url, self.site.site_id)
        self._ledger_lock = threading.Lock()
        self._faults_by_passage = {
            (fault.kind, fault.passage_id): fault for fault in plan.faults if fault.passage_id
        }
        self._skews = [fault for fault in plan.faults if fault.kind == "clock_skew"]

    # --- set-up ---------------------------------------------------------------------

    def provision(self) -> None:
        """Register site, lanes and devices, then start one edge agent per device."""
        from kouan.stack.manager import Stack, reload_broker, write_broker_auth

        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            ensure_site(conn, self.site.site_id, self.site.name, self.site.locode, self.site.customs_district)
            for lane, direction in self.plan.lanes():
                ensure_lane(conn, self.site.site_id, lane, direction)
        api_key = ensure_api_key(self.settings, self.site.site_id)
        if api_key:
            self.http.headers["X-API-Key"] = api_key

        for lane, direction in self.plan.lanes():
            kind = "scanner" if direction == "scan" else "lane"
            device_id = self.plan.device_id(lane)
            self.identities[lane] = provision(
                self.settings.home, self.settings.database_url, device_id, self.site.site_id, lane, kind
            )
        stack = Stack(self.settings.home, self.settings.mqtt_port, self.settings.stack_pg_port)
        if stack.service_secret.exists():
            write_broker_auth(stack)
            reload_broker(stack)
            time.sleep(0.3)  # Mosquitto rereads its password file on SIGHUP asynchronously.

        for lane, identity in self.identities.items():
            self._start_agent(lane, identity)

    def _start_agent(self, lane: str, identity: DeviceIdentity) -> None:
        proxy = LinkProxy(self.settings.mqtt_host, self.settings.mqtt_port, identity.device_id)
        values = {**self.settings.model_dump(), "mqtt_host": "127.0.0.1", "mqtt_port": proxy.port}
        # Reconnect soon after a link outage ends: simulated minutes pass in real seconds.
        edge_settings = EdgeSettings(
            **values, device_id=identity.device_id, reconnect_max_s=2.0, status_interval_s=STATUS_INTERVAL_S
        )
        faults = DeviceFaults(load_private_key(identity.key_path(self.settings.home)))
        agent = SimulatedDeviceAgent(
            identity, edge_settings, on_command=self._on_command, device_faults=faults
        )
        agent.start()
        self.proxies[lane], self.faults[lane], self.agents[lane] = proxy, faults, agent

    def _on_command(self, command: dict[str, Any]) -> None:
        with self._ledger_lock:
            self.ledger.lane_commands.append(
                {
                    key: command.get(key)
                    for key in ("command_id", "lane_id", "passage_id", "decision", "reasons")
                }
            )

    # --- running --------------------------------------------------------------------

    def run(self, progress: Callable[[int, int], None] | None = None) -> Ledger:
        actions = build_actions(self.plan)
        started = time.monotonic()
        for index, action in enumerate(actions):
            due = started + (action.at - self.plan.start).total_seconds() / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._perform(action)
            if progress is not None:
                progress(index + 1, len(actions))
        return self.ledger

    def _perform(self, action: Action) -> None:
        handlers: dict[str, Callable[[Action], None]] = {
            "declare": self._declaration,
            "declaration_status": self._declaration,
            "arrive": self._arrive,
            "eseal_entry": self._eseal_entry,
            "eseal_exit": self._eseal_exit,
            "scan": self._scan,
            "exit": self._exit,
            "heartbeat": self._heartbeat,
            "link_cut": lambda a: self.proxies[self._lane_of(a.fault)].cut(),
            "link_restore": lambda a: self.proxies[self._lane_of(a.fault)].restore(),
            "clock_skew_start": self._clock_skew,
            "clock_skew_end": self._clock_skew,
            "malformed_payload": self._malformed,
            "forged_device": self._forged,
        }
        handlers[action.kind](action)

    def _lane_of(self, fault: FaultPlan | None) -> str:
        assert fault is not None and fault.device_id is not None
        return fault.device_id.removeprefix(f"{self.site.site_id}-")

    # --- declarations -----------------------------------------------------------------

    def _declaration(self, action: Action) -> None:
        truck = action.truck
        assert truck is not None and truck.declaration is not None
        declaration = truck.declaration
        body = {
            "site_id": self.site.site_id,
            "status": action.status,
            "direction": declaration.direction,
            "consignee_code": declaration.consignee_code,
            "consignee_name": declaration.consignee_name,
            "declared_at": declaration.declared_at.isoformat(),
            "containers": [
                {
                    "container_number": item.container_number,
                    "size_type": item.size_type,
                    "seal_numbers": item.declared_seals,
                    "gross_weight_kg": item.declared_gross_kg,
                }
                for item in truck.containers
                if item.declared
            ],
        }
        response = send(self.http, "PUT", f"/api/v1/declarations/{declaration.declaration_number}", json=body)
        if response.status_code >= 300:
            logger.warning(
                "Declaration %s (%s) rejected: %s %s",
                declaration.declaration_number,
                action.status,
                response.status_code,
                response.text[:200],
            )
            self.ledger.declaration_errors.append(f"{declaration.declaration_number}: {response.status_code}")
            return
        self.ledger.declaration_writes += 1

    # --- device events ------------------------------------------------------------------

    def _emit(
        self,
        lane: str,
        kind: str,
        payload: dict[str, Any],
        at: datetime,
        step: str,
        passage_id: str | None = None,
    ) -> None:
        """Emit one event through the lane's edge agent, with the faults planned for it."""
        agent, device_faults = self.agents[lane], self.faults[lane]
        device_id = self.plan.device_id(lane)
        seq = agent.outbox.last_seq() + 1  # this thread is the outbox's only writer

        recorded_at = datetime.now(UTC)
        skew = self._skew_at(device_id, at)
        if skew is not None:
            device_faults.skews[seq] = skew
            recorded_at += skew
        duplicate = self._faults_by_passage.get(("duplicate_delivery", passage_id))
        if duplicate is not None and duplicate.device_id == device_id:
            device_faults.copies[seq] = int(duplicate.details["copies"])  # type: ignore[call-overload]
        delayed = self._faults_by_passage.get(("out_of_order", passage_id))
        if delayed is not None and delayed.device_id == device_id:
            device_faults.delays_s[seq] = float(delayed.details["delay_s"]) / self.speed  # type: ignore[arg-type]

        emitted = agent.emit(kind, payload, occurred_at=at, recorded_at=recorded_at)
        if emitted != seq:
            raise RuntimeError(f"Device {device_id}: expected seq {seq}, outbox allocated {emitted}")
        self.ledger.events.append(
            {"device_id": device_id, "seq": seq, "kind": kind, "step": step, "occurred_at": at.isoformat()}
        )

    def _skew_at(self, device_id: str, at: datetime) -> timedelta | None:
        for fault in self._skews:
            if fault.device_id == device_id and fault.at <= at <= (fault.until or fault.at):
                return timedelta(seconds=float(fault.details["skew_s"]))  # type: ignore[arg-type]
        return None

    def _passage(self, truck: TruckPlan, direction: str) -> dict[str, Any]:
        lane = truck.entry_lane if direction == "in" else truck.exit_lane
        containers = truck.containers
        positions = ["single"] if len(containers) == 1 else ["front", "rear"]
        reads = []
        for item, position in zip(containers, positions, strict=True):
            raw = item.entry_read if direction == "in" and item.entry_read else item.container_number
            seal_source = "eseal" if item.eseal else "ocr"
            reads.append(
                {
                    "container_number": {
                        "raw": raw,
                        "source": "ocr",
                        "confidence": 0.62 if raw != item.container_number else 0.97,
                    },
                    "size_type": {"raw": item.size_type, "source": "ocr", "confidence": 0.95},
                    "seals": [
                        {"raw": seal, "source": seal_source, "confidence": 0.93} for seal in item.actual_seals
                    ],
                    "position": position,
                }
            )
        payload: dict[str, Any] = {
            "passage_id": truck.passage_id(self.plan.day, direction),
            "lane_id": lane,
            "direction": direction,
            "tractor_plate": {"raw": truck.tractor_plate, "source": "lpr", "confidence": 0.97},
            "trailer_plate": {"raw": truck.trailer_plate, "source": "lpr", "confidence": 0.93},
            "containers": reads,
            "gross_weight": {"kg": sum(item.true_gross_kg for item in containers), "source": "scale"},
            "decision_requested": direction == "out",
        }
        if truck.declaration is not None:
            payload["declaration_number"] = truck.declaration.declaration_number
        return payload

    def _eseal_reports(self, truck: TruckPlan, lane: str, at: datetime, tampered: set[str]) -> None:
        for item in truck.containers:
            if not item.eseal:
                continue
            broken = item.container_number in tampered
            payload = {
                "seal_number": {"raw": item.declared_seals[0], "source": "eseal"},
                "container_number": {"raw": item.container_number, "source": "tos"},
                "sealed": not broken,
                "opened": broken,
                "tampered": broken,
                "status_flags": "A0000000" if broken else "00000000",
            }
            self._emit(lane, "seal.status", payload, at, f"eseal:{item.container_number}")

    def _eseal_entry(self, action: Action) -> None:
        assert action.truck is not None
        self._eseal_reports(action.truck, action.truck.entry_lane, action.at, set())

    def _eseal_exit(self, action: Action) -> None:
        truck = action.truck
        assert truck is not None
        tampered = {
            number
            for fault in self.plan.faults_of(truck.truck_id)
            if fault.kind == "eseal_tampered"
            for number in fault.container_numbers
        }
        self._eseal_reports(truck, truck.exit_lane, action.at, tampered)

    def _arrive(self, action: Action) -> None:
        truck = action.truck
        assert truck is not None
        payload = self._passage(truck, "in")
        self._emit(truck.entry_lane, "gate.passage", payload, action.at, "entry", payload["passage_id"])

    def _scan(self, action: Action) -> None:
        truck = action.truck
        assert truck is not None
        scanner = self.site.scanners[truck.truck_id % len(self.site.scanners)]
        for item in truck.containers:
            payload = {
                "lane_id": scanner,
                "container_number": {"raw": item.container_number, "source": "ocr", "confidence": 0.97},
                "result": item.scan_result or "clear",
            }
            self._emit(scanner, "scan.result", payload, action.at, f"scan:{item.container_number}")

    def _exit(self, action: Action) -> None:
        truck = action.truck
        assert truck is not None
        payload = self._passage(truck, "out")
        self._emit(truck.exit_lane, "gate.passage", payload, action.at, "exit", payload["passage_id"])

    def _heartbeat(self, action: Action) -> None:
        assert action.lane is not None
        agent = self.agents[action.lane]
        payload = {"outbox_depth": agent.outbox.depth(), "firmware": agent.settings.firmware}
        self._emit(action.lane, "device.heartbeat", payload, action.at, "heartbeat")

    def _clock_skew(self, action: Action) -> None:
        fault = action.fault
        assert fault is not None
        skew = timedelta(seconds=float(fault.details["skew_s"]))  # type: ignore[arg-type]
        self.faults[self._lane_of(fault)].clock_skew = skew if action.kind == "clock_skew_start" else None

    # --- injected raw messages ----------------------------------------------------------

    def _malformed(self, action: Action) -> None:
        """Publish a message that breaks the contract, with the device's broker credentials."""
        fault = action.fault
        assert fault is not None and fault.device_id is not None
        lane = self._lane_of(fault)
        identity = self.identities[lane]
        key = load_private_key(identity.key_path(self.settings.home))
        variant = str(fault.details["variant"])
        document = self._envelope(identity, MALFORMED_SEQ_BASE + int(fault.fault_id[1:]), action.at)
        document["signature"] = sign(document, key)
        raw = json.dumps(document, ensure_ascii=False).encode()
        if variant == "not_json":
            raw = b"\x00\xff<gate>not json</gate>"
        elif variant == "truncated_json":
            raw = raw[: len(raw) // 2]
        elif variant == "missing_fields":
            raw = json.dumps(
                {"contract_version": 1, "device_id": identity.device_id, "site_id": identity.site_id}
            ).encode()
        elif variant == "bad_payload":
            document["payload"] = {"lane_id": lane, "direction": "sideways"}
            document["signature"] = sign(document, key)
            raw = json.dumps(document, ensure_ascii=False).encode()
        self._publish_as(identity, [raw])
        self.ledger.raw_messages.append(
            {"fault_id": fault.fault_id, "device_id": identity.device_id, "variant": variant}
        )

    def _forged(self, action: Action) -> None:
        """Publish events signed with a stranger's key, using a device's stolen broker password.

        They claim the device's next ``seq`` numbers, so a collector that stored one
        would then see the real event with that ``seq`` as tampered.
        """
        fault = action.fault
        assert fault is not None and fault.device_id is not None
        lane = self._lane_of(fault)
        identity = self.identities[lane]
        stranger = generate_private_key()
        next_seq = self.agents[lane].outbox.last_seq() + 1
        messages = []
        for offset in range(int(fault.details["events"])):  # type: ignore[call-overload]
            document = self._envelope(identity, next_seq + offset, action.at)
            document["signature"] = sign(document, stranger)
            messages.append(json.dumps(document, ensure_ascii=False).encode())
        self._publish_as(identity, messages)
        for _ in messages:
            self.ledger.raw_messages.append(
                {"fault_id": fault.fault_id, "device_id": identity.device_id, "variant": "forged_signature"}
            )

    def _publish_as(self, identity: DeviceIdentity, messages: list[bytes]) -> None:
        """Publish raw messages on a device's events topic from a second connection."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-raw-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5
        )
        client.username_pw_set(identity.mqtt_username, identity.mqtt_password)
        client.connect(self.settings.mqtt_host, self.settings.mqtt_port)
        client.loop_start()
        try:
            for message in messages:
                info = client.publish(events_topic(identity.site_id, identity.device_id), message, qos=1)
                info.wait_for_publish(timeout=10)
        finally:
            client.disconnect()
            client.loop_stop()

    def _envelope(self, identity: DeviceIdentity, seq: int, at: datetime) -> dict[str, Any]:
        now = datetime.now(UTC)
        payload = {
            "passage_id": f"forged-{seq}",
            "lane_id": identity.lane_id or "IN01",
            "direction": "out",
            "containers": [],
            "decision_requested": True,
        }
        return new_envelope(identity.device_id, identity.site_id, seq, "gate.passage", payload, at, now, now)

    # --- finishing ------------------------------------------------------------------------

    def finish(self, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> Ledger:
        """Restore every link, wait for the outboxes to drain, stop the agents."""
        for proxy in self.proxies.values():
            proxy.restore()
        deadline = time.monotonic() + drain_timeout_s
        for agent in self.agents.values():
            agent.wait_until_drained(max(0.0, deadline - time.monotonic()))
        time.sleep(1.0)  # decisions for the last exits are still on their way to the lanes
        for lane, agent in self.agents.items():
            self.ledger.outbox_left[self.plan.device_id(lane)] = agent.outbox.depth()
            agent.stop()
        for proxy in self.proxies.values():
            proxy.close()
        self.http.close()
        self.ledger.finished_at = datetime.now(UTC).isoformat()
        return self.ledger


def write_ledger(ledger: Ledger, truth_path: Path) -> None:
    path = ledger_path(truth_path)
    path.write_text(json.dumps(ledger.__dict__, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def run_day(
    settings: CommonSettings,
    plan: DayPlan,
    *,
    api_url: str,
    speed: float,
    truth_path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Ledger:
    """Write the truth, run the plan, write the run ledger next to the truth, return it."""
    write_truth(plan, truth_path)
    run = PortDayRun(settings, api_url, plan, speed)
    started = time.monotonic()
    run.provision()
    try:
        run.run(progress)
    finally:
        ledger = run.finish()
        ledger.seconds = time.monotonic() - started
        write_ledger(ledger, truth_path)
    return ledger
