"""A TOS feed device wired to a real collector: file -> adapter -> outbox -> broker -> database."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.adapters.tos import FileReport, TosFeed
from edge.agent import EdgeAgent
from edge.settings import EdgeSettings
from tests.conftest import start_collector, stored_count, wait_for

FIXTURES = Path(__file__).parent / "fixtures"
# Zones of the sending sites in the fixtures: Genoa (C11), Huelva (C13 sample A).
SENDER_ZONES = {"ITGOAVTE": "Europe/Rome", "ESHUV": "Europe/Madrid"}


class FeedRig:
    def __init__(self, agent: EdgeAgent, feed: TosFeed, db: Any) -> None:
        self.agent = agent
        self.feed = feed
        self.db = db
        self.device_id = agent.identity.device_id

    def drop(self, *names: str) -> list[FileReport]:
        """Copy fixtures into the drop directory, process them, wait until all are stored."""
        before = stored_count(self.db, self.device_id)
        for name in names:
            shutil.copy(FIXTURES / name, self.feed.drop_dir / name)
        reports = self.feed.poll_once()
        emitted = sum(len(report.seqs) for report in reports)

        def stored() -> bool:
            """every emitted event is in the events table"""
            return stored_count(self.db, self.device_id) == before + emitted

        wait_for(stored, timeout=30)
        return reports

    def events(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            """
            SELECT seq, occurred_at, envelope -> 'payload', derived, container_numbers, event_id
            FROM events WHERE device_id = %s ORDER BY seq
            """,
            (self.device_id,),
        ).fetchall()
        keys = ("seq", "occurred_at", "payload", "derived", "container_numbers", "event_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]


@pytest.fixture
def feed_rig(
    stack: Any, db: Any, site_id: str, make_device: Callable[..., Any], processes: Any, tmp_path: Path
) -> Iterator[FeedRig]:
    identity = make_device(site_id, "TOS", kind="tos_feed")
    start_collector(processes, site_id, 1)
    agent = EdgeAgent(
        identity, EdgeSettings(device_id=identity.device_id), outbox_path=tmp_path / "outbox.sqlite3"
    )
    agent.start()
    feed = TosFeed(agent.emit, tmp_path / "drop", "Asia/Shanghai", SENDER_ZONES)
    yield FeedRig(agent, feed, db)
    agent.stop()
