"""A port day in software: trucks, containers and declarations through the real pipeline.

Simulated lane devices feed real edge agents, which publish through the real broker;
declarations are filed and released through the real API. Simulated time runs
``speed`` times faster than real time, and the same seed gives the same day.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from edge.agent import EdgeAgent
from edge.settings import EdgeSettings
from kouan.devices import ensure_lane, ensure_site, provision
from kouan.settings import CommonSettings
from simulators import reference

logger = logging.getLogger(__name__)

# Share of the day's trucks arriving in each local hour (a terminal's gate profile:
# quiet night, morning peak, afternoon plateau).
HOURLY_PROFILE = (1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 7, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 2, 1)


@dataclass(frozen=True)
class Site:
    site_id: str = "CNSHA-YS"
    name: str = "洋山港区"
    locode: str = "CNSHA"
    customs_district: str = "2248"
    entry_lanes: tuple[str, ...] = ("IN01", "IN02")
    exit_lanes: tuple[str, ...] = ("OUT01", "OUT02")
    scanners: tuple[str, ...] = ("SCAN01",)
    timezone: str = "Asia/Shanghai"

    def device_id(self, lane_id: str) -> str:
        return f"{self.site_id}-{lane_id}"


@dataclass
class ContainerPlan:
    container_number: str
    size_type: str
    gross_weight_kg: float
    seal_numbers: list[str]
    declaration_number: str
    direction: str
    inspection: bool


@dataclass
class TruckPlan:
    truck_id: int
    tractor_plate: str
    trailer_plate: str
    containers: list[ContainerPlan]
    entry_lane: str
    exit_lane: str
    consignee_name: str
    consignee_code: str
    declared_at: datetime
    arrive_at: datetime
    scan_at: datetime | None
    released_at: datetime
    exit_at: datetime


@dataclass(order=True)
class Action:
    at: datetime
    order: int
    kind: str = field(compare=False)
    truck: TruckPlan = field(compare=False)


@dataclass
class RunSummary:
    trucks: int = 0
    containers: int = 0
    declarations_filed: int = 0
    declaration_errors: int = 0
    events_published: int = 0
    events_receipted: int = 0
    outbox_left: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"Simulated {self.trucks} trucks carrying {self.containers} containers in {self.seconds:.0f} s: "
            f"{self.declarations_filed} declaration writes ({self.declaration_errors} failed), "
            f"{self.events_published} events published, {self.events_receipted} receipted, "
            f"{self.outbox_left} still in edge outboxes."
        )


def plan_day(seed: int, trucks: int, site: Site, day: date) -> list[TruckPlan]:
    """Plan every truck of the day; deterministic for a given seed, size and day."""
    rng = random.Random(seed)
    zone = ZoneInfo(site.timezone)
    day_start = datetime.combine(day, datetime.min.time(), zone)
    firms = reference.enterprises(rng)
    plans = []

    for truck_id in range(1, trucks + 1):
        hour = rng.choices(range(24), weights=HOURLY_PROFILE)[0]
        arrive = day_start + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
        direction = "import" if rng.random() < 0.55 else "export"
        inspection = rng.random() < 0.06
        number = reference.declaration_number(rng, site.customs_district, day.year, direction, truck_id)
        consignee = rng.choice(firms)

        kinds = [reference.size_type(rng)]
        if kinds[0].teu == 1 and rng.random() < 0.4:
            kinds.append(reference.SIZE_TYPES[0])
        containers = [
            ContainerPlan(
                container_number=reference.container_number(rng),
                size_type=kind.code,
                gross_weight_kg=reference.gross_weight_kg(rng, kind),
                seal_numbers=[reference.seal_number(rng)],
                declaration_number=number,
                direction=direction,
                inspection=inspection,
            )
            for kind in kinds
        ]
        scan_at = arrive + timedelta(minutes=rng.uniform(10, 40)) if inspection else None
        released = (scan_at or arrive) + timedelta(minutes=rng.uniform(5, 45))
        plans.append(
            TruckPlan(
                truck_id=truck_id,
                tractor_plate=reference.tractor_plate(rng),
                trailer_plate=reference.trailer_plate(rng),
                containers=containers,
                entry_lane=rng.choice(site.entry_lanes),
                exit_lane=rng.choice(site.exit_lanes),
                consignee_name=consignee.name,
                consignee_code=consignee.credit_code,
                declared_at=arrive - timedelta(minutes=rng.uniform(30, 360)),
                arrive_at=arrive,
                scan_at=scan_at,
                released_at=released,
                exit_at=released + timedelta(minutes=rng.uniform(5, 120)),
            )
        )
    return plans


def truth_document(seed: int, site: Site, day: date, plans: list[TruckPlan]) -> dict[str, Any]:
    """Return what really happened, in a stable JSON-ready form."""

    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {key: encode(item) for key, item in value.items()}
        if isinstance(value, list):
            return [encode(item) for item in value]
        return value

    return {
        "seed": seed,
        "day": day.isoformat(),
        "site": asdict(site),
        "trucks": [encode(asdict(plan)) for plan in plans],
        "faults": [],
    }


def _actions(plans: list[TruckPlan]) -> list[Action]:
    actions = []
    for plan in plans:
        actions.append(Action(plan.declared_at, 0, "declare", plan))
        actions.append(Action(plan.arrive_at, 1, "arrive", plan))
        if plan.scan_at is not None:
            actions.append(Action(plan.scan_at, 2, "scan", plan))
        actions.append(Action(plan.released_at, 3, "release", plan))
        actions.append(Action(plan.exit_at, 4, "exit", plan))
    heapq.heapify(actions)
    return [heapq.heappop(actions) for _ in range(len(actions))]


class PortDay:
    def __init__(self, settings: CommonSettings, api_url: str, site: Site, speed: float) -> None:
        self.settings = settings
        self.site = site
        self.speed = speed
        self.http = httpx.Client(base_url=api_url, timeout=30)
        self.agents: dict[str, EdgeAgent] = {}
        self.summary = RunSummary()

    def provision(self) -> None:
        """Register the site, its lanes and one device per lane, then start their edge agents."""
        import psycopg

        from kouan.stack.manager import Stack, reload_broker, write_broker_auth

        lanes = [(lane, "in") for lane in self.site.entry_lanes]
        lanes += [(lane, "out") for lane in self.site.exit_lanes]
        lanes += [(lane, "scan") for lane in self.site.scanners]
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            ensure_site(conn, self.site.site_id, self.site.name, self.site.locode, self.site.customs_district)
            for lane, direction in lanes:
                ensure_lane(conn, self.site.site_id, lane, direction)

        identities = []
        for lane, direction in lanes:
            kind = "scanner" if direction == "scan" else "lane"
            identities.append(
                provision(
                    self.settings.home,
                    self.settings.database_url,
                    self.site.device_id(lane),
                    self.site.site_id,
                    lane,
                    kind,
                )
            )
        stack = Stack(self.settings.home, self.settings.mqtt_port, self.settings.stack_pg_port)
        write_broker_auth(stack)
        reload_broker(stack)
        time.sleep(0.3)  # Mosquitto rereads its password file on SIGHUP asynchronously.

        for identity in identities:
            edge_settings = EdgeSettings(**self.settings.model_dump(), device_id=identity.device_id)
            agent = EdgeAgent(identity, edge_settings)
            agent.start()
            self.agents[identity.lane_id or identity.device_id] = agent

    def run(self, plans: list[TruckPlan], progress: Any = None) -> RunSummary:
        started = time.monotonic()
        actions = _actions(plans)
        sim_start = actions[0].at if actions else datetime.now(UTC)
        self.summary.trucks = len(plans)
        self.summary.containers = sum(len(plan.containers) for plan in plans)

        for index, action in enumerate(actions):
            due = started + (action.at - sim_start).total_seconds() / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._perform(action)
            if progress is not None:
                progress(index + 1, len(actions))
        return self.summary

    def _perform(self, action: Action) -> None:
        plan = action.truck
        if action.kind == "declare":
            self._put_declaration(plan, "inspection_ordered" if plan.containers[0].inspection else "declared")
        elif action.kind == "release":
            self._put_declaration(plan, "released")
        elif action.kind == "arrive":
            self._passage(plan, "in", plan.entry_lane, action.at)
        elif action.kind == "scan":
            self._scan(plan, action.at)
        elif action.kind == "exit":
            self._passage(plan, "out", plan.exit_lane, action.at)

    def _put_declaration(self, plan: TruckPlan, status: str) -> None:
        first = plan.containers[0]
        body = {
            "site_id": self.site.site_id,
            "status": status,
            "direction": first.direction,
            "consignee_code": plan.consignee_code,
            "consignee_name": plan.consignee_name,
            "declared_at": plan.declared_at.isoformat(),
            "containers": [
                {
                    "container_number": item.container_number,
                    "size_type": item.size_type,
                    "seal_numbers": item.seal_numbers,
                    "gross_weight_kg": item.gross_weight_kg,
                }
                for item in plan.containers
            ],
        }
        response = self.http.put(f"/api/v1/declarations/{first.declaration_number}", json=body)
        if response.status_code >= 300:
            self.summary.declaration_errors += 1
            logger.warning(
                "Declaration %s rejected: %s %s",
                first.declaration_number,
                response.status_code,
                response.text[:200],
            )
            return
        self.summary.declarations_filed += 1

    def _passage(self, plan: TruckPlan, direction: str, lane: str, at: datetime) -> None:
        positions = ["single"] if len(plan.containers) == 1 else ["front", "rear"]
        payload = {
            "passage_id": f"{lane}-{plan.truck_id}-{direction}",
            "lane_id": lane,
            "direction": direction,
            "tractor_plate": {"raw": plan.tractor_plate, "source": "lpr", "confidence": 0.97},
            "trailer_plate": {"raw": plan.trailer_plate, "source": "lpr", "confidence": 0.93},
            "containers": [
                {
                    "container_number": {"raw": item.container_number, "source": "ocr", "confidence": 0.98},
                    "size_type": {"raw": item.size_type, "source": "ocr", "confidence": 0.95},
                    "seals": [
                        {"raw": seal, "source": "ocr", "confidence": 0.9} for seal in item.seal_numbers
                    ],
                    "position": position,
                }
                for item, position in zip(plan.containers, positions, strict=True)
            ],
            "gross_weight": {"kg": sum(item.gross_weight_kg for item in plan.containers)},
            "declaration_number": plan.containers[0].declaration_number,
            "decision_requested": direction == "out",
        }
        self.agents[lane].emit("gate.passage", payload, occurred_at=at)
        self.summary.events_published += 1

    def _scan(self, plan: TruckPlan, at: datetime) -> None:
        scanner = self.site.scanners[0]
        for item in plan.containers:
            payload = {
                "lane_id": scanner,
                "container_number": {"raw": item.container_number, "source": "ocr", "confidence": 0.97},
                "result": "clear",
            }
            self.agents[scanner].emit("scan.result", payload, occurred_at=at)
            self.summary.events_published += 1

    def finish(self, drain_timeout_s: float = 60.0) -> RunSummary:
        for agent in self.agents.values():
            agent.wait_until_drained(drain_timeout_s)
        for agent in self.agents.values():
            self.summary.events_receipted += agent.receipted
            self.summary.outbox_left += agent.outbox.depth()
            agent.stop()
        self.http.close()
        return self.summary


def run_port_day(
    settings: CommonSettings,
    *,
    api_url: str,
    trucks: int,
    speed: float,
    seed: int,
    site_id: str,
    truth_path: Path | None,
    day: date | None = None,
) -> RunSummary:
    """Plan and run a port day, print progress, and return the summary."""
    from rich.progress import Progress

    site = Site(site_id=site_id)
    # Yesterday in the port's time zone, so no simulated event lies in the future.
    day = day or datetime.now(ZoneInfo(site.timezone)).date() - timedelta(days=1)
    plans = plan_day(seed, trucks, site, day)
    if truth_path is not None:
        truth_path.write_text(
            json.dumps(truth_document(seed, site, day, plans), ensure_ascii=False, indent=1)
        )

    simulation = PortDay(settings, api_url, site, speed)
    started = time.monotonic()
    simulation.provision()
    try:
        with Progress() as progress:
            task = progress.add_task("port day", total=None)
            simulation.run(plans, lambda done, total: progress.update(task, completed=done, total=total))
    finally:
        summary = simulation.finish()
    summary.seconds = time.monotonic() - started
    return summary
