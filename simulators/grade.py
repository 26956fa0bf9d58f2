"""Grade Kouan's conclusions against a run's ground truth.

Everything Kouan concluded is read through the API (alerts, gate decisions, the
event feed, container status), never from the database, so the grade measures what
an officer or an integrator would see. An endpoint that does not respond is reported
as unavailable, and a rule the collector does not implement as "no rule": neither
counts as a pass.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from simulators.api_client import send
from simulators.plan import FAULT_RULES
from simulators.truth import read_truth

logger = logging.getLogger(__name__)

# Stable alert rule codes shared by collector, API and simulator.
VISIT_RULES = (
    "undeclared_container",
    "declaration_mismatch",
    "seal_mismatch",
    "seal_missing",
    "seal_extra",
    "eseal_abnormal",
    "weight_out_of_tolerance",
    "inspection_not_scanned",
    "scan_suspicious",
    "exit_without_release",
    "dwell_exceeded",
)
PASSAGE_RULES = ("container_number_unreadable", "ocr_low_confidence")
DEVICE_RULES = (
    "clock_drift",
    "seq_gap",
    "outbox_full",
    "device_unknown",
    "signature_invalid",
    "device_mismatch",
    "event_tampered",
)
ALL_RULES = VISIT_RULES + PASSAGE_RULES + DEVICE_RULES
PAGE_LIMIT = 500
# Seconds the grade waits for sent events to show in the feed before counting them lost.
FEED_WAIT_S = 15.0

GRADED, NO_RULE, UNAVAILABLE = "graded", "no rule", "unavailable"


class Unavailable(RuntimeError):
    """An API endpoint the grade needs did not respond with data."""


@dataclass
class RuleGrade:
    rule: str
    fault_kinds: list[str]
    injected: int = 0
    detected: int = 0
    missed: int = 0
    false_alarms: int = 0
    status: str = GRADED
    missed_faults: list[str] = field(default_factory=list)
    false_alarm_subjects: list[str] = field(default_factory=list)


@dataclass
class NoEffectGrade:
    """A fault that should change no conclusion: graded by the alerts and statuses of its subjects."""

    fault_kind: str
    injected: int = 0
    affected: int = 0
    status: str = GRADED
    affected_faults: list[str] = field(default_factory=list)


@dataclass
class EventGrade:
    status: str = GRADED
    published: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    raw_injected: int = 0
    lost_keys: list[str] = field(default_factory=list)


@dataclass
class DecisionGrade:
    status: str = GRADED
    source: str = "api"
    clean_exits: int = 0
    clean_released: int = 0
    faulty_exits: int = 0
    faulty_not_released: int = 0
    without_decision: int = 0
    wrong: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StatusGrade:
    status: str = GRADED
    containers: int = 0
    matched: int = 0
    mismatched: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Grade:
    scenario: str
    site_id: str
    rules: list[RuleGrade]
    no_effect: list[NoEffectGrade]
    events: EventGrade
    decisions: DecisionGrade
    statuses: StatusGrade
    alerts_status: str = GRADED
    alerts_seen: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)

    def rule(self, code: str) -> RuleGrade:
        return next(row for row in self.rules if row.rule == code)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)


class ApiReader:
    """Reads Kouan's conclusions over HTTP with the caller's API key."""

    def __init__(self, api_url: str, api_key: str | None = None) -> None:
        key = api_key if api_key is not None else os.environ.get("KOUAN_API_KEY")
        headers = {"X-API-Key": key, "Accept-Language": "en"} if key else {"Accept-Language": "en"}
        self.http = httpx.Client(base_url=api_url, timeout=30, headers=headers)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = send(self.http, "GET", path, params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"GET {path} failed: {exc}") from exc
        if response.status_code in (404, 405) and _route_missing(response):
            raise Unavailable(f"GET {path} is not served by this API (HTTP {response.status_code})")
        if response.status_code in (401, 403):
            raise Unavailable(
                f"GET {path} rejected the credentials (HTTP {response.status_code}); set KOUAN_API_KEY"
            )
        return response

    def items(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Return every item of a paged list endpoint.

        A short page ends the list: the event feed hands out a cursor even on its
        last page, to be polled again later.
        """
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = {**params, "limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            response = self.get(path, page)
            if response.status_code != 200:
                raise Unavailable(f"GET {path} returned HTTP {response.status_code}: {response.text[:200]}")
            body = response.json()
            items = body.get("items", [])
            found.extend(items)
            cursor = body.get("next_cursor")
            if not cursor or len(items) < PAGE_LIMIT:
                return found


def _route_missing(response: httpx.Response) -> bool:
    """Tell a missing route (FastAPI's bare 404) from a 404 about a missing object."""
    try:
        body = response.json()
    except ValueError:
        return True
    return body == {"detail": "Not Found"} or body == {"detail": "Method Not Allowed"}


# --- which rules exist ---------------------------------------------------------------------


def implemented_rules(reader: ApiReader | None = None) -> set[str]:
    """Return the rule codes the collector raises.

    An API that lists its rules (``GET /api/v1/rules``) is asked first. Otherwise a
    rule counts as implemented when the installed collector package names its code
    as a string literal.
    """
    if reader is not None:
        try:
            response = reader.get("/api/v1/rules")
            if response.status_code == 200:
                body = response.json()
                items = body.get("items", body) if isinstance(body, dict) else body
                return {item["rule_code"] if isinstance(item, dict) else str(item) for item in items}
        except Unavailable:
            pass

    # NOTE: a code named in the collector's source is taken as a rule that runs; a
    # rule listed by the API would remove this guess.
    import collector

    # __path__, not __file__: an editable install makes the package a namespace.
    roots = [Path(entry) for entry in collector.__path__ if Path(entry).is_dir()]
    source = "\n".join(
        path.read_text(encoding="utf-8", errors="replace") for root in roots for path in root.rglob("*.py")
    )
    return {code for code in ALL_RULES if re.search(rf"[\"']{code}[\"']", source)}


# --- matching alerts to faults -------------------------------------------------------------


def _number(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _matches(alert: dict[str, Any], fault: dict[str, Any]) -> bool:
    """Tell whether an alert is about a fault's subject."""
    container = _number(alert.get("container_number"))
    if container and container in fault["container_numbers"]:
        return True
    device = alert.get("device_id") or (
        alert.get("subject_id") if alert.get("subject_kind") == "device" else None
    )
    if fault.get("device_id") and device == fault["device_id"] and alert.get("subject_kind") == "device":
        return True
    if alert.get("subject_kind") == "passage":
        text = json.dumps([alert.get("subject_id"), alert.get("evidence")], ensure_ascii=False)
        markers = [fault.get("passage_id"), fault.get("details", {}).get("raw")]
        return any(marker and marker in text for marker in markers)
    return False


def _explained(alert: dict[str, Any], faults: list[dict[str, Any]]) -> bool:
    for fault in faults:
        allowed = {fault["rule"], *fault.get("side_rules", [])}
        if alert["rule_code"] in allowed and _matches(alert, fault):
            return True
    return False


# --- the grade ---------------------------------------------------------------------------


class Grader:
    def __init__(self, truth: dict[str, Any], ledger: dict[str, Any] | None, reader: ApiReader) -> None:
        self.truth = truth
        self.ledger = ledger
        self.reader = reader
        self.site_id = truth["site"]["site_id"]
        self.faults = truth["faults"]
        self.unavailable: dict[str, str] = {}

    def grade(self) -> Grade:
        rules = implemented_rules(self.reader)
        alerts = self._alerts()
        statuses = self._statuses()
        return Grade(
            scenario=self.truth["scenario"],
            site_id=self.site_id,
            rules=self._rule_grades(alerts, rules),
            no_effect=self._no_effect_grades(alerts, statuses),
            events=self._events(),
            decisions=self._decisions(),
            statuses=statuses,
            alerts_status=GRADED if alerts is not None else UNAVAILABLE,
            alerts_seen=len(alerts or []),
            unavailable=self.unavailable,
        )

    def _alerts(self) -> list[dict[str, Any]] | None:
        params: dict[str, Any] = {"site": self.site_id}
        if self.ledger is not None:
            params["since"] = self.ledger["started_at"]
        try:
            found = []
            for status in ("open", "acknowledged", "resolved"):
                found += self.reader.items("/api/v1/alerts", {**params, "status": status})
        except Unavailable as exc:
            self.unavailable["alerts"] = str(exc)
            return None
        unique = {item["alert_id"]: item for item in found}
        return list(unique.values())

    def _rule_grades(self, alerts: list[dict[str, Any]] | None, implemented: set[str]) -> list[RuleGrade]:
        by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for fault in self.faults:
            if fault["rule"]:
                by_rule[fault["rule"]].append(fault)
        expected_rules = sorted(set(by_rule) | {rule for rule in FAULT_RULES.values() if rule})
        false_alarms: dict[str, list[str]] = defaultdict(list)
        for alert in alerts or []:
            if not _explained(alert, self.faults):
                subject = _number(alert.get("container_number")) or alert.get("subject_id")
                false_alarms[alert["rule_code"]].append(f"{alert.get('subject_kind')}:{subject}")

        rows = []
        for rule in [*expected_rules, *sorted(set(false_alarms) - set(expected_rules))]:
            faults = by_rule.get(rule, [])
            kinds = sorted(
                {fault["kind"] for fault in faults} or {k for k, r in FAULT_RULES.items() if r == rule}
            )
            row = RuleGrade(
                rule,
                kinds,
                injected=len(faults),
                false_alarms=len(false_alarms.get(rule, [])),
                false_alarm_subjects=false_alarms.get(rule, []),
            )
            if alerts is None:
                row.status = UNAVAILABLE
            elif rule not in implemented:
                row.status = NO_RULE
            else:
                for fault in faults:
                    hit = any(a["rule_code"] == rule and _matches(a, fault) for a in alerts)
                    row.detected += hit
                    if not hit:
                        row.missed_faults.append(fault["fault_id"])
                row.missed = len(row.missed_faults)
            rows.append(row)
        return rows

    def _no_effect_grades(
        self, alerts: list[dict[str, Any]] | None, statuses: StatusGrade
    ) -> list[NoEffectGrade]:
        wrong_status = {item["container_number"] for item in statuses.mismatched}
        rows: dict[str, NoEffectGrade] = {}
        for fault in self.faults:
            if fault["rule"]:
                continue
            row = rows.setdefault(fault["kind"], NoEffectGrade(fault["kind"]))
            row.injected += 1
            if alerts is None and statuses.status != GRADED:
                row.status = UNAVAILABLE
                continue
            alerted = alerts is not None and any(
                _matches(alert, fault)
                and alert.get("subject_kind") != "device"
                and alert["rule_code"] not in fault.get("side_rules", [])
                and not _explained(alert, [f for f in self.faults if f is not fault])
                for alert in alerts
            )
            if alerted or set(fault["container_numbers"]) & wrong_status:
                row.affected += 1
                row.affected_faults.append(fault["fault_id"])
        return sorted(rows.values(), key=lambda row: row.fault_kind)

    def _events(self) -> EventGrade:
        grade = EventGrade()
        if self.ledger is None:
            grade.status = UNAVAILABLE
            self.unavailable["ledger"] = "no run ledger next to the truth file: the run did not happen"
            return grade

        sent = {(event["device_id"], event["seq"]) for event in self.ledger["events"]}
        grade.published = len(sent)
        grade.raw_injected = len(self.ledger["raw_messages"])
        try:
            feed = self._feed(sent)
        except Unavailable as exc:
            grade.status = UNAVAILABLE
            self.unavailable["events"] = str(exc)
            return grade

        started = datetime.fromisoformat(self.ledger["started_at"])
        keys = Counter((item["device_id"], item["seq"]) for item in feed)
        grade.stored = len(sent & set(keys))
        lost = sorted(sent - set(keys))
        grade.lost = len(lost)
        grade.lost_keys = [f"{device}#{seq}" for device, seq in lost[:20]]
        grade.duplicated = sum(count - 1 for key, count in keys.items() if key in sent)
        grade.unexpected = sum(
            1
            for item in feed
            if (item["device_id"], item["seq"]) not in sent
            and datetime.fromisoformat(item["received_at"]) >= started
        )
        return grade

    def _feed(self, sent: set[tuple[str, int]]) -> list[dict[str, Any]]:
        """Read the site's event feed until every sent event shows or the wait ends.

        The feed lists an event a few seconds after it is stored (``feed_settle_s``).
        """
        deadline = time.monotonic() + FEED_WAIT_S
        while True:
            feed = self.reader.items("/api/v1/events", {"site": self.site_id})
            if sent <= {(item["device_id"], item["seq"]) for item in feed} or time.monotonic() > deadline:
                return feed
            time.sleep(1.0)

    def _exit_expectations(self) -> dict[str, tuple[str, list[str]]]:
        """Return the expected decision and the truck's faults per exit passage."""
        expected = {}
        for truck in self.truth["trucks"]:
            for step in truck["journey"]:
                if step["step"] == "exit":
                    expected[truck["passages"]["out"]] = (step["decision"], truck["faults"])
        return expected

    def _decisions(self) -> DecisionGrade:
        grade = DecisionGrade()
        expected = self._exit_expectations()
        decided: dict[str, str] = {}
        try:
            for lane in self.truth["site"]["exit_lanes"]:
                items = self.reader.items("/api/v1/decisions", {"site": self.site_id, "lane": lane})
                for item in sorted(items, key=lambda item: item.get("issued_at", "")):
                    if not item.get("overrides"):
                        decided[item["passage_id"]] = item["decision"]
        except Unavailable as exc:
            self.unavailable["decisions"] = str(exc)
            if self.ledger is None:
                grade.status = UNAVAILABLE
                return grade
            grade.source = "lane"
            for command in self.ledger["lane_commands"]:
                decided[command["passage_id"]] = command["decision"]

        for passage_id, (want, faults) in expected.items():
            got = decided.get(passage_id)
            if got is None:
                grade.without_decision += 1
            right = got == "release" if want == "release" else got in ("hold", "manual")
            if want == "release":
                grade.clean_exits += 1
                grade.clean_released += right
            else:
                grade.faulty_exits += 1
                grade.faulty_not_released += right
            if not right:
                grade.wrong.append({"passage_id": passage_id, "expected": want, "got": got, "faults": faults})
        return grade

    def _statuses(self) -> StatusGrade:
        grade = StatusGrade()
        for truck in self.truth["trucks"]:
            for container in truck["containers"]:
                grade.containers += 1
                number = container["container_number"]
                try:
                    response = self.reader.get(f"/api/v1/containers/{number}")
                except Unavailable as exc:
                    grade.status = UNAVAILABLE
                    self.unavailable["containers"] = str(exc)
                    return grade
                seen = _visit_of(response, self.site_id)
                want = container["expected"]
                if seen == want:
                    grade.matched += 1
                else:
                    grade.mismatched.append({"container_number": number, "expected": want, "seen": seen})
        return grade


def _visit_of(response: httpx.Response, site_id: str) -> dict[str, Any] | None:
    if response.status_code != 200:
        return None
    current = response.json()["current"]
    if current.get("site_id") != site_id:
        return None
    return {"status": current["status"], "customs_status": current["customs_status"]}


def grade_run(truth_path: Path, api_url: str, api_key: str | None = None) -> Grade:
    """Read a truth file (and its run ledger) and grade Kouan's conclusions over the API."""
    truth, ledger = read_truth(truth_path)
    if api_key is None:
        from kouan.settings import CommonSettings
        from simulators.api_client import stored_api_key

        api_key = stored_api_key(CommonSettings(), truth["site"]["site_id"])
    reader = ApiReader(api_url, api_key)
    try:
        return Grader(truth, ledger, reader).grade()
    finally:
        reader.close()


def _cell(row_status: str, value: int) -> str:
    return value.__str__() if row_status == GRADED else row_status


def print_grade(grade: Grade, console: Any) -> None:
    """Print the grade as tables: per rule, faults expected to change nothing, events, decisions."""
    from rich.table import Table

    rules = Table(title=f"规则检出 Detection by rule — {grade.scenario} @ {grade.site_id}")
    for header in (
        "规则 rule",
        "注入故障 fault kinds",
        "注入 injected",
        "检出 detected",
        "漏检 missed",
        "误报 false alarms",
    ):
        rules.add_column(header, justify="left" if "rule" in header or "kinds" in header else "right")
    for row in grade.rules:
        false_alarms = str(row.false_alarms) if grade.alerts_status == GRADED else UNAVAILABLE
        rules.add_row(
            row.rule,
            ", ".join(row.fault_kinds) or "—",
            str(row.injected),
            _cell(row.status, row.detected),
            _cell(row.status, row.missed),
            false_alarms,
        )
    console.print(rules)

    quiet = Table(title="应无影响的故障 Faults that must change no conclusion")
    for header in ("故障 fault kind", "注入 injected", "受影响 affected"):
        quiet.add_column(header, justify="left" if "kind" in header else "right")
    for item in grade.no_effect:
        quiet.add_row(item.fault_kind, str(item.injected), _cell(item.status, item.affected))
    console.print(quiet)

    events = grade.events
    accounting = Table(title="事件核对 Event accounting")
    for header in (
        "发送 published",
        "入库 stored",
        "丢失 lost",
        "重复 duplicated",
        "多出 unexpected",
        "注入原始报文 raw injected",
    ):
        accounting.add_column(header, justify="right")
    accounting.add_row(
        str(events.published),
        _cell(events.status, events.stored),
        _cell(events.status, events.lost),
        _cell(events.status, events.duplicated),
        _cell(events.status, events.unexpected),
        str(events.raw_injected),
    )
    console.print(accounting)

    decisions = grade.decisions
    gate = Table(title=f"卡口决定 Gate decisions (source: {decisions.source})")
    for header in (
        "正常出卡 clean exits",
        "放行 released",
        "异常出卡 faulty exits",
        "拦截 held/manual",
        "无决定 no decision",
    ):
        gate.add_column(header, justify="right")
    gate.add_row(
        str(decisions.clean_exits),
        _cell(decisions.status, decisions.clean_released),
        str(decisions.faulty_exits),
        _cell(decisions.status, decisions.faulty_not_released),
        _cell(decisions.status, decisions.without_decision),
    )
    console.print(gate)

    statuses = grade.statuses
    console.print(
        f"箱状态 Container status: {statuses.containers} containers, "
        f"{_cell(statuses.status, statuses.matched)} as in the truth, "
        f"{_cell(statuses.status, len(statuses.mismatched))} different"
    )
    for name, reason in grade.unavailable.items():
        console.print(f"[yellow]unavailable[/yellow] {name}: {reason}")
