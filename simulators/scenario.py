"""Scenario files: the site, its traffic, declarations, dwell times and injected faults.

A scenario is a YAML document (see docs/simulator.md and the shipped examples in
``simulators/scenarios/``). ``load_scenario`` accepts a path or the name of a shipped
scenario and validates it. An unknown key is an error, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCENARIO_DIR = Path(__file__).with_name("scenarios")

# Faults applied to a truck and its containers; rate = share of trucks.
TRUCK_FAULTS = (
    "undeclared_container",
    "seal_mismatch",
    "eseal_tampered",
    "weight_out_of_tolerance",
    "inspection_skipped",
    "scan_suspicious",
    "exit_before_release",
    "ocr_misread",
)
# Faults applied to single events on their way to the collector; rate = share of events.
EVENT_FAULTS = ("duplicate_delivery", "out_of_order")
# Faults of a device or its link; rate = occurrences per simulated day across the site.
DEVICE_FAULTS = ("link_outage", "clock_skew", "malformed_payload", "forged_device")
FAULT_KINDS = TRUCK_FAULTS + EVENT_FAULTS + DEVICE_FAULTS

FaultKind = Literal[
    "undeclared_container",
    "seal_mismatch",
    "eseal_tampered",
    "weight_out_of_tolerance",
    "inspection_skipped",
    "scan_suspicious",
    "exit_before_release",
    "ocr_misread",
    "duplicate_delivery",
    "out_of_order",
    "link_outage",
    "clock_skew",
    "malformed_payload",
    "forged_device",
]

Share = Annotated[float, Field(ge=0.0, le=1.0)]
MinuteRange = tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]]


class ScenarioError(ValueError):
    """A scenario file is missing, not YAML, or does not follow the scenario format."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(value: MinuteRange) -> MinuteRange:
    low, high = value
    if low > high:
        raise ValueError(f"range [{low}, {high}] has its lower bound above its upper bound")
    return value


class SiteConfig(StrictModel):
    site_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}$")
    name: str = Field(min_length=1, max_length=100)
    locode: str = Field(pattern=r"^[A-Z]{2}[A-Z2-9]{3}$", description="UN/LOCODE, e.g. CNSHA")
    customs_district: str = Field(pattern=r"^\d{4}$", description="关区代码 of the accepting customs office")
    timezone: str = "Asia/Shanghai"
    entry_lanes: list[str] = Field(min_length=1, max_length=20)
    exit_lanes: list[str] = Field(min_length=1, max_length=20)
    scanners: list[str] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _distinct_lanes(self) -> SiteConfig:
        lanes = [*self.entry_lanes, *self.exit_lanes, *self.scanners]
        if len(set(lanes)) != len(lanes):
            raise ValueError(f"lane ids must be distinct across entry, exit and scanner lanes: {lanes}")
        return self


class TrafficConfig(StrictModel):
    arrivals_per_hour: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=24, max_length=24, description="Trucks arriving in each local hour, 00:00 first"
    )
    import_share: Share = 0.55
    two_container_share: Share = Field(
        default=0.15, description="Share of trucks carrying two 20-foot containers instead of one"
    )
    eseal_share: Share = Field(default=0.2, description="Share of containers under an e-seal")
    size_type_weights: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        default=None, description="Relative shares of ISO size-type codes; the reference mix when unset"
    )


class DeclarationConfig(StrictModel):
    filed_before_arrival_minutes: MinuteRange = (30, 360)
    inspection_share: Share = Field(default=0.06, description="Share of declarations with inspection ordered")
    scan_after_arrival_minutes: MinuteRange = (10, 40)
    release_after_arrival_minutes: MinuteRange = Field(
        default=(5, 45), description="For inspected declarations, counted from the scan"
    )

    _ranges = field_validator(
        "filed_before_arrival_minutes", "scan_after_arrival_minutes", "release_after_arrival_minutes"
    )(_check_range)


class DwellConfig(StrictModel):
    minutes: MinuteRange = Field(default=(20, 240), description="Entry to exit, uniform in this range")
    exit_after_release_minutes: MinuteRange = (5, 30)

    _ranges = field_validator("minutes", "exit_after_release_minutes")(_check_range)


class FaultConfig(StrictModel):
    """How often one fault kind is injected: a rate (see the kind's unit) or an exact count."""

    rate: Annotated[float, Field(ge=0)] = 0.0
    count: Annotated[int, Field(ge=0)] | None = None
    minutes: MinuteRange = Field(
        default=(10, 40), description="Duration of a link outage or clock skew; skew size for clock_skew"
    )

    _ranges = field_validator("minutes")(_check_range)


class Scenario(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    description: str = ""
    seed: int = 1
    speed: float = Field(default=600.0, gt=0, description="Simulated seconds per real second")
    site: SiteConfig
    traffic: TrafficConfig
    declarations: DeclarationConfig = DeclarationConfig()
    dwell: DwellConfig = DwellConfig()
    faults: dict[FaultKind, FaultConfig] = {}
    isolate_faults: bool = Field(
        default=False,
        description="Keep link outages away from trucks with visit faults, to grade each fault alone",
    )

    @field_validator("faults", mode="before")
    @classmethod
    def _rates_as_numbers(cls, value: Any) -> Any:
        """Accept ``kind: 0.02`` as a short form of ``kind: {rate: 0.02}``."""
        if not isinstance(value, dict):
            return value
        return {
            kind: {"rate": item} if isinstance(item, int | float) else item for kind, item in value.items()
        }

    @model_validator(mode="after")
    def _shares_below_one(self) -> Scenario:
        for kind, config in self.faults.items():
            if kind in TRUCK_FAULTS + EVENT_FAULTS and config.rate > 1:
                raise ValueError(f"fault {kind}: rate {config.rate} is a share and must be at most 1")
        return self

    def trucks_per_day(self) -> int:
        return round(sum(self.traffic.arrivals_per_hour))

    def scaled_to(self, trucks: int) -> Scenario:
        """Return this scenario with its hourly arrivals scaled to ``trucks`` per day."""
        total = sum(self.traffic.arrivals_per_hour)
        if total <= 0:
            raise ScenarioError(f"Scenario {self.name} has no arrivals to scale")
        hourly = [value * trucks / total for value in self.traffic.arrivals_per_hour]
        traffic = self.traffic.model_copy(update={"arrivals_per_hour": hourly})
        return self.model_copy(update={"traffic": traffic})


def shipped_scenarios() -> list[str]:
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.yaml"))


def resolve_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and validate a scenario file, or a shipped scenario by name."""
    path = resolve_path(name_or_path)
    if not path.exists():
        raise ScenarioError(
            f"Scenario {str(name_or_path)!r} not found: give a YAML file or one of "
            f"{', '.join(shipped_scenarios())}"
        )

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"Scenario {path} is not valid YAML: {exc}") from exc
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(f"Scenario {path} does not follow the scenario format:\n{exc}") from exc
