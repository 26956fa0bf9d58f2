"""Plan a port day from a scenario and a seed: trucks, containers, declarations, faults.

Planning is pure and deterministic: the same scenario, seed and day give the same
plan, byte for byte once written as ground truth. Nothing here talks to a broker,
a database or the API; :mod:`simulators.runner` carries the plan out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from simulators import reference
from simulators.scenario import DEVICE_FAULTS, Scenario

# Rule each fault kind should raise (rules.md codes); None where the expected outcome
# is "no effect on conclusions" and the grade checks event accounting instead.
FAULT_RULES: dict[str, str | None] = {
    "undeclared_container": "undeclared_container",
    "seal_mismatch": "seal_mismatch",
    "eseal_tampered": "eseal_abnormal",
    "weight_out_of_tolerance": "weight_out_of_tolerance",
    "inspection_skipped": "inspection_not_scanned",
    "scan_suspicious": "scan_suspicious",
    "exit_before_release": "exit_without_release",
    "ocr_misread": "container_number_unreadable",  # only when the misread cannot be repaired
    "duplicate_delivery": None,
    "out_of_order": None,
    "link_outage": None,
    "clock_skew": "clock_drift",
    "malformed_payload": None,
    "forged_device": "signature_invalid",
}
# Further alerts a fault may rightly cause on the same subject; they are neither
# detections nor false alarms.
FAULT_SIDE_RULES: dict[str, tuple[str, ...]] = {
    "undeclared_container": ("declaration_mismatch", "dwell_exceeded"),
    "seal_mismatch": ("seal_missing", "seal_extra"),
    "eseal_tampered": (),
    "weight_out_of_tolerance": (),
    "inspection_skipped": ("exit_without_release",),
    "scan_suspicious": ("dwell_exceeded",),
    "exit_before_release": (),
    "ocr_misread": ("ocr_low_confidence",),
    "forged_device": ("device_mismatch", "event_tampered"),
    # An envelope without its signature cannot be authenticated.
    "malformed_payload": ("signature_invalid",),
}
# Faults after which the exit lane must not receive a release.
HOLD_AT_EXIT = frozenset(
    {
        "seal_mismatch",
        "eseal_tampered",
        "weight_out_of_tolerance",
        "inspection_skipped",
        "exit_before_release",
    }
)
# Faults whose truck never leaves: the container is held at the site.
NO_EXIT = frozenset({"undeclared_container", "scan_suspicious"})

# A weighbridge reads a container's gross mass to within this share on clean traffic.
WEIGHBRIDGE_NOISE = 0.005
# Simulated time between a device's heartbeat events; they give quiet lanes traffic.
HEARTBEAT_INTERVAL = timedelta(minutes=30)


@dataclass
class ContainerPlan:
    container_number: str
    size_type: str
    declared_gross_kg: float
    true_gross_kg: float
    declared_seals: list[str]
    actual_seals: list[str]
    eseal: bool
    declared: bool = True
    entry_read: str | None = None  # the OCR text at entry when it differs from the number
    scan_result: str | None = None


@dataclass
class DeclarationPlan:
    declaration_number: str
    direction: str
    consignee_name: str
    consignee_code: str
    declared_at: datetime
    # (when, status) in time order; the first entry is the filing.
    lifecycle: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def final_status(self) -> str:
        return self.lifecycle[-1][1]


@dataclass
class TruckPlan:
    truck_id: int
    tractor_plate: str
    trailer_plate: str
    entry_lane: str
    exit_lane: str
    containers: list[ContainerPlan]
    declaration: DeclarationPlan | None
    arrive_at: datetime
    scan_at: datetime | None
    exit_at: datetime | None
    inspection: bool = False
    faults: list[str] = field(default_factory=list)

    def passage_id(self, day: date, direction: str) -> str:
        lane = self.entry_lane if direction == "in" else self.exit_lane
        return f"{day:%Y%m%d}-{lane}-{self.truck_id:05d}-{direction}"


@dataclass
class FaultPlan:
    fault_id: str
    kind: str
    at: datetime
    rule: str | None
    side_rules: tuple[str, ...] = ()
    truck_id: int | None = None
    container_numbers: list[str] = field(default_factory=list)
    device_id: str | None = None
    passage_id: str | None = None
    until: datetime | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class DayPlan:
    scenario: Scenario
    seed: int
    day: date
    start: datetime
    end: datetime
    trucks: list[TruckPlan]
    faults: list[FaultPlan]

    def device_id(self, lane_id: str) -> str:
        return f"{self.scenario.site.site_id}-{lane_id}"

    def lanes(self) -> list[tuple[str, str]]:
        site = self.scenario.site
        return (
            [(lane, "in") for lane in site.entry_lanes]
            + [(lane, "out") for lane in site.exit_lanes]
            + [(lane, "scan") for lane in site.scanners]
        )

    def faults_of(self, truck_id: int) -> list[FaultPlan]:
        return [fault for fault in self.faults if fault.truck_id == truck_id]


def _minutes(rng: random.Random, bounds: tuple[float, float]) -> timedelta:
    return timedelta(minutes=rng.uniform(*bounds))


class Planner:
    """Builds one :class:`DayPlan`; every random draw comes from one seeded generator."""

    def __init__(self, scenario: Scenario, seed: int, day: date) -> None:
        self.scenario = scenario
        self.seed = seed
        self.day = day
        self.rng = random.Random(f"{scenario.name}/{seed}/{day.isoformat()}")
        self.zone = ZoneInfo(scenario.site.timezone)
        self.day_start = datetime.combine(day, datetime.min.time(), self.zone)
        self.day_end = self.day_start + timedelta(days=1) - timedelta(seconds=1)
        self.firms = reference.enterprises(self.rng)
        self.faults: list[FaultPlan] = []
        self._misreads = 0

    def plan(self) -> DayPlan:
        trucks = self._trucks()
        self._truck_faults(trucks)
        first_hour = next(
            (hour for hour, rate in enumerate(self.scenario.traffic.arrivals_per_hour) if rate > 0), 0
        )
        start = self.day_start + timedelta(hours=first_hour)
        end = max([start, *(self._last_action(truck) for truck in trucks)])
        day_plan = DayPlan(self.scenario, self.seed, self.day, start, end, trucks, self.faults)
        self._event_faults(day_plan)
        self._device_faults(day_plan)
        day_plan.faults.sort(key=lambda fault: (fault.at, fault.fault_id))
        return day_plan

    # --- traffic --------------------------------------------------------------------

    def _arrival_times(self) -> list[datetime]:
        times = []
        for hour, rate in enumerate(self.scenario.traffic.arrivals_per_hour):
            whole = int(rate)
            count = whole + (1 if self.rng.random() < rate - whole else 0)
            for _ in range(count):
                offset = timedelta(hours=hour, seconds=self.rng.uniform(0, 3600))
                times.append(self.day_start + offset)
        return sorted(times)

    def _size_type(self) -> reference.SizeType:
        weights = self.scenario.traffic.size_type_weights
        if not weights:
            return reference.size_type(self.rng)
        kinds = {kind.code: kind for kind in reference.SIZE_TYPES}
        unknown = sorted(set(weights) - set(kinds))
        if unknown:
            raise ValueError(f"size_type_weights names unknown ISO size-type codes {unknown}")
        codes = sorted(weights)
        return kinds[self.rng.choices(codes, weights=[weights[code] for code in codes])[0]]

    def _containers(self) -> list[ContainerPlan]:
        traffic = self.scenario.traffic
        twin = self.rng.random() < traffic.two_container_share
        kinds = [reference.SIZE_TYPES[0], reference.SIZE_TYPES[0]] if twin else [self._size_type()]
        containers = []
        for kind in kinds:
            declared = reference.gross_weight_kg(self.rng, kind)
            noise = 1 + self.rng.uniform(-WEIGHBRIDGE_NOISE, WEIGHBRIDGE_NOISE)
            eseal = self.rng.random() < traffic.eseal_share
            seal = reference.eseal_number(self.rng) if eseal else reference.seal_number(self.rng)
            containers.append(
                ContainerPlan(
                    container_number=reference.container_number(self.rng),
                    size_type=kind.code,
                    declared_gross_kg=declared,
                    true_gross_kg=float(round(declared * noise, -1)),
                    declared_seals=[seal],
                    actual_seals=[seal],
                    eseal=eseal,
                )
            )
        return containers

    def _trucks(self) -> list[TruckPlan]:
        site = self.scenario.site
        policy = self.scenario.declarations
        trucks = []
        for truck_id, arrive in enumerate(self._arrival_times(), start=1):
            direction = "import" if self.rng.random() < self.scenario.traffic.import_share else "export"
            firm = self.rng.choice(self.firms)
            declared_at = arrive - _minutes(self.rng, policy.filed_before_arrival_minutes)
            number = reference.declaration_number(
                self.rng, site.customs_district, self.day.year, direction, self._sequence(truck_id)
            )
            truck = TruckPlan(
                truck_id=truck_id,
                tractor_plate=reference.tractor_plate(self.rng),
                trailer_plate=reference.trailer_plate(self.rng),
                entry_lane=self.rng.choice(site.entry_lanes),
                exit_lane=self.rng.choice(site.exit_lanes),
                containers=self._containers(),
                declaration=DeclarationPlan(number, direction, firm.name, firm.credit_code, declared_at),
                arrive_at=arrive,
                scan_at=None,
                exit_at=None,
                inspection=self.rng.random() < policy.inspection_share,
            )
            self._schedule(truck)
            trucks.append(truck)
        return trucks

    def _sequence(self, truck_id: int) -> int:
        # Spread the 9-digit sequence by seed so that two seeds never share numbers.
        return (self.seed % 1000) * 1_000_000 + truck_id

    def _schedule(self, truck: TruckPlan) -> None:
        """Set scan, release and exit times and the declaration's lifecycle."""
        policy = self.scenario.declarations
        dwell = self.scenario.dwell
        assert truck.declaration is not None
        lifecycle = [
            (truck.declaration.declared_at, "inspection_ordered" if truck.inspection else "declared")
        ]

        ready = truck.arrive_at
        if truck.inspection:
            truck.scan_at = self._within_day(
                truck.arrive_at + _minutes(self.rng, policy.scan_after_arrival_minutes)
            )
            ready = truck.scan_at
        released = self._within_day(ready + _minutes(self.rng, policy.release_after_arrival_minutes))
        lifecycle.append((released, "released"))
        earliest_exit = released + _minutes(self.rng, dwell.exit_after_release_minutes)
        truck.exit_at = self._within_day(
            max(earliest_exit, truck.arrive_at + _minutes(self.rng, dwell.minutes))
        )
        truck.declaration.lifecycle = lifecycle

    def _within_day(self, moment: datetime) -> datetime:
        # Everything happens before the simulated day ends, so no event lies in the future.
        return min(moment, self.day_end)

    @staticmethod
    def _last_action(truck: TruckPlan) -> datetime:
        moments = [truck.arrive_at, truck.exit_at or truck.arrive_at]
        if truck.declaration is not None:
            moments += [when for when, _ in truck.declaration.lifecycle]
        return max(moments)

    # --- faults on trucks -------------------------------------------------------------

    def _count(self, kind: str, population: int) -> int:
        config = self.scenario.faults.get(kind)
        if config is None:
            return 0
        if config.count is not None:
            return config.count
        if kind in DEVICE_FAULTS:
            whole = int(config.rate)
            return whole + (1 if self.rng.random() < config.rate - whole else 0)
        return sum(1 for _ in range(population) if self.rng.random() < config.rate)

    def _truck_faults(self, trucks: list[TruckPlan]) -> None:
        appliers = {
            "undeclared_container": (lambda t: True, self._undeclared),
            "seal_mismatch": (lambda t: any(not c.eseal for c in t.containers), self._seal_mismatch),
            "eseal_tampered": (lambda t: any(c.eseal for c in t.containers), self._eseal_tampered),
            "weight_out_of_tolerance": (lambda t: len(t.containers) == 1, self._weight),
            "inspection_skipped": (lambda t: True, self._inspection_skipped),
            "scan_suspicious": (lambda t: True, self._scan_suspicious),
            "exit_before_release": (lambda t: not t.inspection, self._exit_before_release),
            "ocr_misread": (lambda t: True, self._ocr_misread),
        }
        for kind, (eligible, apply) in appliers.items():
            requested = self._count(kind, len(trucks))
            candidates = [truck for truck in trucks if not truck.faults and eligible(truck)]
            self.rng.shuffle(candidates)
            applied = 0
            for truck in candidates:
                if applied == requested:
                    break
                details = apply(truck)
                if details is None:
                    continue  # no misread with the requested outcome for this number; next truck
                truck.faults.append(kind)
                self._add_truck_fault(kind, truck, details)
                applied += 1

    def _add_truck_fault(self, kind: str, truck: TruckPlan, details: dict[str, object]) -> None:
        subjects = details.pop("containers", [c.container_number for c in truck.containers])
        at = details.pop("at", truck.arrive_at)
        rule = FAULT_RULES[kind]
        if kind == "ocr_misread" and details["outcome"] == "repaired":
            rule = None
        self.faults.append(
            FaultPlan(
                fault_id=f"F{len(self.faults) + 1:04d}",
                kind=kind,
                at=at,  # type: ignore[arg-type]
                rule=rule,
                side_rules=FAULT_SIDE_RULES.get(kind, ()),
                truck_id=truck.truck_id,
                container_numbers=list(subjects),  # type: ignore[call-overload]
                passage_id=details.pop("passage_id", None),  # type: ignore[arg-type]
                details=details,
            )
        )

    def _undeclared(self, truck: TruckPlan) -> dict[str, object]:
        assert truck.declaration is not None
        missing = truck.containers[-1]
        missing.declared = False
        if len(truck.containers) == 1:
            truck.declaration = None
        truck.exit_at = None
        return {"containers": [missing.container_number]}

    def _seal_mismatch(self, truck: TruckPlan) -> dict[str, object]:
        container = next(c for c in truck.containers if not c.eseal)
        container.actual_seals = [reference.seal_number(self.rng)]
        return {
            "containers": [container.container_number],
            "declared": container.declared_seals,
            "actual": container.actual_seals,
        }

    def _eseal_tampered(self, truck: TruckPlan) -> dict[str, object]:
        container = next(c for c in truck.containers if c.eseal)
        return {
            "containers": [container.container_number],
            "at": truck.exit_at,
            "seal": container.declared_seals[0],
        }

    def _weight(self, truck: TruckPlan) -> dict[str, object]:
        container = truck.containers[0]
        factor = self.rng.choice((self.rng.uniform(1.2, 1.4), self.rng.uniform(0.6, 0.8)))
        container.true_gross_kg = float(round(container.declared_gross_kg * factor, -1))
        return {"declared_kg": container.declared_gross_kg, "actual_kg": container.true_gross_kg}

    def _inspection_skipped(self, truck: TruckPlan) -> dict[str, object]:
        assert truck.declaration is not None
        truck.inspection = True
        truck.scan_at = None
        filed = truck.declaration.lifecycle[0][0]
        truck.declaration.lifecycle = [(filed, "inspection_ordered")]
        return {"at": truck.exit_at}

    def _scan_suspicious(self, truck: TruckPlan) -> dict[str, object]:
        assert truck.declaration is not None
        policy = self.scenario.declarations
        truck.inspection = True
        truck.scan_at = self._within_day(
            truck.arrive_at + _minutes(self.rng, policy.scan_after_arrival_minutes)
        )
        truck.containers[0].scan_result = "suspicious"
        filed = truck.declaration.lifecycle[0][0]
        held = self._within_day(truck.scan_at + timedelta(minutes=self.rng.uniform(2, 10)))
        truck.declaration.lifecycle = [(filed, "inspection_ordered"), (held, "held")]
        truck.exit_at = None
        return {"containers": [truck.containers[0].container_number], "at": truck.scan_at}

    def _exit_before_release(self, truck: TruckPlan) -> dict[str, object]:
        assert truck.declaration is not None and truck.exit_at is not None
        filed = truck.declaration.lifecycle[0][0]
        truck.exit_at = self._within_day(truck.arrive_at + timedelta(minutes=self.rng.uniform(5, 20)))
        released = self._within_day(truck.exit_at + timedelta(minutes=self.rng.uniform(5, 30)))
        truck.declaration.lifecycle = [(filed, "declared"), (released, "released")]
        return {"at": truck.exit_at, "released_at": released.isoformat()}

    def _ocr_misread(self, truck: TruckPlan) -> dict[str, object] | None:
        container = truck.containers[0]
        # Alternate the outcomes, so that even two misreads show both.
        self._misreads += 1
        outcome = "unreadable" if self._misreads % 2 else "repaired"
        misread = reference.misread_container(self.rng, container.container_number, outcome)
        if misread is None:
            return None
        container.entry_read = misread.raw
        return {
            "containers": [container.container_number],
            "passage_id": truck.passage_id(self.day, "in"),
            "raw": misread.raw,
            "outcome": misread.outcome,
        }

    # --- faults on events and devices ----------------------------------------------------

    def _clean_exiting(self, plan: DayPlan) -> list[TruckPlan]:
        return [truck for truck in plan.trucks if not truck.faults and truck.exit_at is not None]

    def _event_faults(self, plan: DayPlan) -> None:
        clean = self._clean_exiting(plan)
        # Each clean truck sends at least an entry and an exit passage.
        for truck in self.rng.sample(
            clean, k=min(self._count("duplicate_delivery", 2 * len(clean)), len(clean))
        ):
            direction = self.rng.choice(("in", "out"))
            lane = truck.entry_lane if direction == "in" else truck.exit_lane
            truck.faults.append("duplicate_delivery")
            self.faults.append(
                FaultPlan(
                    fault_id=f"F{len(self.faults) + 1:04d}",
                    kind="duplicate_delivery",
                    at=truck.arrive_at if direction == "in" else truck.exit_at,  # type: ignore[arg-type]
                    rule=None,
                    truck_id=truck.truck_id,
                    container_numbers=[c.container_number for c in truck.containers],
                    device_id=plan.device_id(lane),
                    passage_id=truck.passage_id(self.day, direction),
                    details={"copies": self.rng.randint(2, 3)},
                )
            )

        clean = [truck for truck in self._clean_exiting(plan) if not truck.scan_at]
        for truck in self.rng.sample(clean, k=min(self._count("out_of_order", 2 * len(clean)), len(clean))):
            assert truck.exit_at is not None
            delay = truck.exit_at - truck.arrive_at + timedelta(minutes=5)
            truck.faults.append("out_of_order")
            self.faults.append(
                FaultPlan(
                    fault_id=f"F{len(self.faults) + 1:04d}",
                    kind="out_of_order",
                    at=truck.arrive_at,
                    rule=None,
                    truck_id=truck.truck_id,
                    container_numbers=[c.container_number for c in truck.containers],
                    device_id=plan.device_id(truck.entry_lane),
                    passage_id=truck.passage_id(self.day, "in"),
                    details={"delay_s": round(delay.total_seconds(), 3), "arrives_after": "exit passage"},
                )
            )

    def _device_faults(self, plan: DayPlan) -> None:
        devices = [plan.device_id(lane) for lane, _ in plan.lanes()]
        span = max((plan.end - plan.start).total_seconds(), 60.0)
        busy = self._faulted_spans(plan) if self.scenario.isolate_faults else {}
        for kind in DEVICE_FAULTS:
            config = self.scenario.faults.get(kind)
            for _ in range(self._count(kind, 0)):
                assert config is not None
                for _attempt in range(ISOLATION_ATTEMPTS):
                    at = plan.start + timedelta(seconds=self.rng.uniform(0, span * 0.7))
                    device_id = self.rng.choice(devices)
                    until = min(at + _minutes(self.rng, config.minutes), plan.end)
                    if kind != "link_outage" or not _overlaps(busy.get(device_id, []), at, until):
                        break
                fault = FaultPlan(
                    fault_id=f"F{len(self.faults) + 1:04d}",
                    kind=kind,
                    at=at,
                    rule=FAULT_RULES[kind],
                    side_rules=FAULT_SIDE_RULES.get(kind, ()),
                    device_id=device_id,
                )
                if kind in ("link_outage", "clock_skew"):
                    fault.until = until
                if kind == "clock_skew":
                    skew = self.rng.uniform(5, 30) * 60 * self.rng.choice((1, -1))
                    fault.details = {"skew_s": round(skew, 3)}
                if kind == "malformed_payload":
                    fault.details = {"variant": self.rng.choice(MALFORMED_VARIANTS)}
                if kind == "forged_device":
                    fault.details = {"events": self.rng.randint(1, 3)}
                self.faults.append(fault)

    def _faulted_spans(self, plan: DayPlan) -> dict[str, list[tuple[datetime, datetime]]]:
        """Return, per device, when trucks with visit faults use it, widened by ISOLATION_MARGIN."""
        spans: dict[str, list[tuple[datetime, datetime]]] = {}
        for truck in plan.trucks:
            if not set(truck.faults) & set(FAULT_RULES) - {"duplicate_delivery", "out_of_order"}:
                continue
            last = self._last_action(truck)
            lanes = [truck.entry_lane, truck.exit_lane, *plan.scenario.site.scanners]
            for lane in lanes:
                spans.setdefault(plan.device_id(lane), []).append(
                    (truck.arrive_at - ISOLATION_MARGIN, last + ISOLATION_MARGIN)
                )
        return spans


def _overlaps(spans: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(start <= span_end and span_start <= end for span_start, span_end in spans)


MALFORMED_VARIANTS = ("not_json", "truncated_json", "missing_fields", "bad_payload")
# With isolate_faults, a link outage keeps this far from any truck with a visit fault:
# an exit held back by an outage past its release is no longer an exit before release.
ISOLATION_MARGIN = timedelta(minutes=30)
ISOLATION_ATTEMPTS = 200


def plan_day(scenario: Scenario, seed: int, day: date) -> DayPlan:
    """Plan the scenario's day; deterministic for a given scenario, seed and day."""
    return Planner(scenario, seed, day).plan()
