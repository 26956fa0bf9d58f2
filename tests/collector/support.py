"""Scenario building for correlation tests: devices, declarations and stored events."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from collector.correlation.rules import RuleSettings
from collector.ingest import Accepted, Message, Rejected, inspect
from collector.registry import DatabaseRegistry
from collector.store import BatchResult, DecisionPolicy, write_batch
from kouan.contract import events_topic
from kouan.devices import DeviceIdentity, provision
from kouan.identifiers import iso6346_check_digit
from kouan.signing import load_private_key, sign

_containers = itertools.count(int(os.getpid()) % 10_000 * 100)
T0 = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)


def new_declaration_number() -> str:
    """A valid 18-digit 海关编号 (关区 2248, year 2026, import), random so that other test
    modules sharing the session's database do not collide with it."""
    return f"224820261{secrets.randbelow(10**9):09d}"


def new_container_number(owner: str = "KOUU") -> str:
    first10 = f"{owner}{next(_containers) % 1_000_000:06d}"
    return first10 + iso6346_check_digit(first10)


def declare(
    db: psycopg.Connection,
    site_id: str,
    containers: list[dict[str, Any]],
    status: str = "released",
    other_holds: tuple[str, ...] = (),
    number: str | None = None,
) -> str:
    """Insert a declaration as the API stores it; ``containers`` items: number, seals, weight."""
    number = number or new_declaration_number()
    now = datetime.now(UTC)
    db.execute(
        """
        INSERT INTO declarations (declaration_number, site_id, customs_district, direction, status,
            other_holds, declared_at, status_changed_at, document)
        VALUES (%s, %s, '2248', 'import', %s, %s, %s, %s, '{}')
        """,
        (number, site_id, status, list(other_holds), now, now),
    )
    for item in containers:
        db.execute(
            """
            INSERT INTO declaration_containers
                (declaration_number, container_number, seal_numbers, gross_weight_kg)
            VALUES (%s, %s, %s, %s)
            """,
            (number, item["number"], list(item.get("seals", ())), item.get("weight")),
        )
    return number


def set_status(db: psycopg.Connection, number: str, status: str, other_holds: tuple[str, ...] = ()) -> None:
    db.execute(
        "UPDATE declarations SET status = %s, other_holds = %s, status_changed_at = now() "
        "WHERE declaration_number = %s",
        (status, list(other_holds), number),
    )


def gate_passage(
    containers: list[str],
    *,
    lane: str = "IN01",
    direction: str = "in",
    seals: tuple[str, ...] = (),
    weight_kg: float | None = None,
    declaration: str | None = None,
    decision: bool = False,
    confidence: float = 0.95,
    passage_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "passage_id": passage_id or f"P-{uuid.uuid4().hex[:8]}",
        "lane_id": lane,
        "direction": direction,
        "containers": [
            {
                "container_number": {"raw": number, "source": "ocr", "confidence": confidence},
                "seals": [{"raw": seal, "source": "ocr"} for seal in seals],
            }
            for number in containers
        ],
        "decision_requested": decision,
    }
    if weight_kg is not None:
        body["gross_weight"] = {"kg": weight_kg}
    if declaration is not None:
        body["declaration_number"] = declaration
    return body


def scan(number: str, result: str = "clear", lane: str = "SCAN01") -> dict[str, Any]:
    return {
        "lane_id": lane,
        "container_number": {"raw": number, "source": "ocr", "confidence": 0.97},
        "result": result,
    }


def eseal(
    number: str, seal: str, *, opened: bool = False, tampered: bool = False, approved: bool = False
) -> dict[str, Any]:
    return {
        "seal_number": {"raw": seal, "source": "eseal"},
        "container_number": {"raw": number, "source": "eseal"},
        "sealed": not opened,
        "opened": opened,
        "tampered": tampered,
        "approved_opening": approved,
    }


class Devices:
    """Signed devices of one test site, provisioned directly (no broker reload needed)."""

    def __init__(self, home: Path, database_url: str, site_id: str) -> None:
        self.home = home
        self.site_id = site_id
        self.database_url = database_url
        self.by_lane: dict[str, DeviceIdentity] = {}
        self.seqs: dict[str, int] = defaultdict(int)

    def lane(self, lane_id: str, kind: str = "lane") -> DeviceIdentity:
        if lane_id not in self.by_lane:
            self.by_lane[lane_id] = provision(
                self.home, self.database_url, f"{self.site_id}-{lane_id}", self.site_id, lane_id, kind
            )
        return self.by_lane[lane_id]

    def event(
        self,
        lane_id: str,
        payload: dict[str, Any],
        kind: str = "gate.passage",
        occurred_at: datetime = T0,
        seq: int | None = None,
    ) -> tuple[str, bytes]:
        """Return (topic, signed bytes) of one event from the lane's device."""
        identity = self.lane(lane_id, "scanner" if kind == "scan.result" else "lane")
        if seq is None:
            self.seqs[identity.device_id] += 1
            seq = self.seqs[identity.device_id]
        moment = occurred_at.isoformat()
        document: dict[str, Any] = {
            "contract_version": 1,
            "event_id": str(uuid.uuid4()),
            "device_id": identity.device_id,
            "site_id": self.site_id,
            "seq": seq,
            "kind": kind,
            "occurred_at": moment,
            "recorded_at": moment,
            "sent_at": moment,
            "payload": payload,
        }
        document["signature"] = sign(document, load_private_key(identity.key_path(self.home)))
        return events_topic(self.site_id, identity.device_id), json.dumps(
            document, ensure_ascii=False
        ).encode()


def event_id_of(raw: bytes) -> str:
    return str(json.loads(raw)["event_id"])


class Store:
    """Stores events through the collector's real inspect + write_batch, one transaction per call."""

    def __init__(self, db: psycopg.Connection, database_url: str, rules: RuleSettings | None = None) -> None:
        self.db = db
        self.registry = DatabaseRegistry(database_url, 0.0)
        self.policy = DecisionPolicy(rules or RuleSettings(), stale_sensor_s=120.0, decision_valid_s=30.0)

    def write(self, *events: tuple[str, bytes]) -> BatchResult:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for topic, raw in events:
            outcome = inspect(Message(topic, raw, 0, datetime.now(UTC)), self.registry)
            (accepted if isinstance(outcome, Accepted) else rejected).append(outcome)
        assert rejected == [], [item.reason for item in rejected]
        with self.db.transaction():
            return write_batch(self.db, accepted, [], self.policy)


def open_alerts(db: psycopg.Connection, site_id: str, container: str | None = None) -> list[dict[str, Any]]:
    rows = db.execute(
        """
        SELECT alert_id, rule_code, severity, status, subject_kind, subject_id, container_number,
               message_zh, message_en, evidence, occurrences, resolved_by
        FROM alerts WHERE site_id = %s AND status <> 'resolved'
          AND (%s::text IS NULL OR container_number = %s)
        ORDER BY alert_id
        """,
        (site_id, container, container),
    ).fetchall()
    keys = (
        "alert_id",
        "rule_code",
        "severity",
        "status",
        "subject_kind",
        "subject_id",
        "container_number",
        "message_zh",
        "message_en",
        "evidence",
        "occurrences",
        "resolved_by",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


def visit_rules(db: psycopg.Connection, site_id: str, container: str) -> list[str]:
    return [
        item["rule_code"] for item in open_alerts(db, site_id, container) if item["subject_kind"] == "visit"
    ]


def decisions(db: psycopg.Connection, site_id: str) -> list[dict[str, Any]]:
    rows = db.execute(
        """
        SELECT command_id, event_id::text, container_numbers, decision, reasons, overrides, issued_by,
               valid_until - issued_at
        FROM gate_decisions WHERE site_id = %s ORDER BY issued_at, command_id
        """,
        (site_id,),
    ).fetchall()
    keys = (
        "command_id",
        "event_id",
        "container_numbers",
        "decision",
        "reasons",
        "overrides",
        "issued_by",
        "validity",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


def reason_codes(decision: dict[str, Any]) -> list[str]:
    return sorted(reason["code"] for reason in decision["reasons"])


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
