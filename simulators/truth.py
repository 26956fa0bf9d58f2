"""Ground truth: what really happened in a simulated day, as stable JSON.

Two files are written per run:

- the truth file (``--truth PATH``): the plan as it really happened, every
  container's journey, the declarations' lifecycles and every injected fault. It is
  a pure function of scenario, seed and day, so the same seed gives the same bytes.
- the run ledger (``PATH`` with ``.run.json``): what this run sent: each event's
  device and ``seq``, the API base URL and when the run started. Sequence numbers
  continue from a device's earlier runs, so the ledger differs between runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from simulators.plan import HOLD_AT_EXIT, DayPlan, TruckPlan

TRUTH_FORMAT = 1


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def expected_visit(truck: TruckPlan, index: int) -> dict[str, Any]:
    """Return the container's final visit as Kouan should conclude it."""
    container = truck.containers[index]
    if truck.exit_at is not None:
        status = "exited"
    elif truck.scan_at is not None:
        status = "scanned"
    else:
        status = "entered"

    customs_status = "undeclared"
    if container.declared and truck.declaration is not None:
        customs_status = truck.declaration.final_status
    return {"status": status, "customs_status": customs_status}


def _journey(plan: DayPlan, truck: TruckPlan) -> list[dict[str, Any]]:
    steps = [{"at": truck.arrive_at, "step": "entry", "lane": truck.entry_lane}]
    if truck.scan_at is not None:
        steps.append({"at": truck.scan_at, "step": "scan", "lane": plan.scenario.site.scanners[0]})
    if truck.exit_at is not None:
        expected = "hold" if HOLD_AT_EXIT & set(truck.faults) else "release"
        steps.append({"at": truck.exit_at, "step": "exit", "lane": truck.exit_lane, "decision": expected})
    return steps


def truth_document(plan: DayPlan) -> dict[str, Any]:
    trucks = []
    for truck in plan.trucks:
        document = asdict(truck)
        document["passages"] = {
            "in": truck.passage_id(plan.day, "in"),
            "out": truck.passage_id(plan.day, "out") if truck.exit_at is not None else None,
        }
        document["journey"] = _journey(plan, truck)
        for index, container in enumerate(document["containers"]):
            container["expected"] = expected_visit(truck, index)
        trucks.append(document)

    return _encode(
        {
            "format": TRUTH_FORMAT,
            "scenario": plan.scenario.name,
            "seed": plan.seed,
            "day": plan.day.isoformat(),
            "start": plan.start,
            "end": plan.end,
            "site": plan.scenario.site.model_dump(),
            "devices": {lane: plan.device_id(lane) for lane, _ in plan.lanes()},
            "trucks": trucks,
            "faults": [asdict(fault) for fault in plan.faults],
        }
    )


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def write_truth(plan: DayPlan, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(truth_document(plan)), encoding="utf-8")


def ledger_path(truth_path: Path) -> Path:
    return truth_path.with_name(truth_path.stem + ".run.json")


def read_truth(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Return the truth document and its run ledger, or None when the run never happened."""
    truth = json.loads(path.read_text(encoding="utf-8"))
    ledger_file = ledger_path(path)
    ledger = json.loads(ledger_file.read_text(encoding="utf-8")) if ledger_file.exists() else None
    return truth, ledger
