"""The TOS feed: a drop directory (and optional HTTP drop) for terminal reports.

A terminal operating system writes CODECO, COARRI or DCSA Track and Trace files
into ``drop_dir`` (write to a name starting with '.' or ending in '.tmp', then
rename: half-written files are never read), or POSTs them to
``http://127.0.0.1:{http_port}/drop/{name}``. Each container move becomes a signed
``equipment.event`` through the device's outbox, exactly like a lane read.

A processed file moves to ``done/`` with a report beside it (``NAME.report.json``:
events emitted, every problem by segment or event index). A file the feed cannot
read at all moves to ``failed/``. Progress per file is written to ``.state/`` after
each event enters the outbox, so a restart after a crash or an outbox-full stop
resumes at the next event. Only an event in flight at a crash (in the outbox, its
progress not yet written) is sent a second time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from edge.outbox import OutboxFull
from edge.settings import EdgeSettings
from kouan.formats.feed import FeedFile, read_feed_file

logger = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any], datetime], int]

# Largest file accepted from a drop: a day of CODECO for a large terminal is a few MB.
MAX_FILE_BYTES = 20_000_000


class TosFeedSettings(EdgeSettings):
    """Settings of the TOS feed (environment prefix ``KOUAN_``)."""

    drop_dir: Path = Field(default=Path("tos-drop"), description="Directory the TOS writes files into")
    tos_timezone: str = Field(
        default="Asia/Shanghai", description="IANA zone of EDIFACT times without a zone, for any sender"
    )
    tos_sender_timezones: dict[str, str] = Field(
        default={}, description='Zone per UNB sender id, e.g. {"ITGOAVTE": "Europe/Rome"}'
    )
    tos_poll_interval_s: float = Field(default=2.0, gt=0, description="Seconds between scans of drop_dir")
    tos_http_port: int = Field(default=0, ge=0, le=65535, description="HTTP drop on 127.0.0.1; 0 = off")


@dataclass
class FileReport:
    name: str
    format: str
    sha256: str
    events_found: int
    seqs: list[int] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "sha256": self.sha256,
            "events_found": self.events_found,
            "events_emitted": len(self.seqs),
            "seqs": self.seqs,
            "problems": self.problems,
            "notes": self.notes,
            "complete": self.complete,
        }


class TosFeed:
    def __init__(
        self,
        emit: Emit,
        drop_dir: Path,
        timezone: str = "Asia/Shanghai",
        sender_timezones: dict[str, str] | None = None,
    ) -> None:
        self.emit = emit
        self.drop_dir = drop_dir
        self.timezone = timezone
        self.sender_timezones = sender_timezones or {}
        for sub in ("done", "failed", ".state"):
            (drop_dir / sub).mkdir(parents=True, exist_ok=True)

    def pending_files(self) -> list[Path]:
        return sorted(
            path
            for path in self.drop_dir.iterdir()
            if path.is_file() and not path.name.startswith(".") and not path.name.endswith(".tmp")
        )

    def poll_once(self) -> list[FileReport]:
        reports = []
        for path in self.pending_files():
            try:
                report = self.process(path)
            except Exception as exc:  # noqa: BLE001 (one file must not stop the feed)
                logger.exception("TOS file %s could not be processed; moved to failed/", path.name)
                report = self._fail(path, exc)
            reports.append(report)
            if not report.complete:
                break  # the outbox is full: later files wait for the next poll
        return reports

    def process(self, path: Path) -> FileReport:
        """Emit every sound event of one file; move it to done/ or failed/ with its report."""
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            feed = FeedFile("unknown", "")
            feed.problems.append(
                {"code": "too_large", "detail": f"{len(data)} bytes; the limit is {MAX_FILE_BYTES}"}
            )
        else:
            feed = read_feed_file(data, self.timezone, self.sender_timezones)
        report = FileReport(
            path.name, feed.format, feed.sha256, len(feed.moves), [], feed.problems, feed.notes
        )

        state_path = self.drop_dir / ".state" / f"{path.name}.json"
        start = self._resume_index(state_path, feed.sha256)
        for index in range(start, len(feed.moves)):
            occurred_at, payload = feed.moves[index]
            try:
                report.seqs.append(self.emit("equipment.event", payload, occurred_at))
            except OutboxFull as exc:
                logger.error(
                    "TOS file %s: outbox full after event %d of %d: %s",
                    path.name,
                    index,
                    len(feed.moves),
                    exc,
                )
                report.complete = False
                return report
            except ValidationError as exc:
                report.problems.append(
                    {"code": "invalid_event", "index": index, "detail": str(exc.errors()[:3])}
                )
            self._save_progress(state_path, feed.sha256, index + 1)

        self._finish(path, report, state_path)
        return report

    def _fail(self, path: Path, exc: Exception) -> FileReport:
        report = FileReport(
            path.name, "unknown", "", 0, problems=[{"code": "internal_error", "detail": repr(exc)}]
        )
        (self.drop_dir / "failed" / f"{path.name}.report.json").write_text(json.dumps(report.to_json()))
        path.replace(self.drop_dir / "failed" / path.name)
        return report

    def _save_progress(self, state_path: Path, sha256: str, next_index: int) -> None:
        temporary = state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"sha256": sha256, "next": next_index}))
        temporary.replace(state_path)

    def _resume_index(self, state_path: Path, sha256: str) -> int:
        if not state_path.exists():
            return 0
        state = json.loads(state_path.read_text())
        return int(state["next"]) if state.get("sha256") == sha256 else 0

    def _finish(self, path: Path, report: FileReport, state_path: Path) -> None:
        target = "done" if report.events_found or not report.problems else "failed"
        destination = self.drop_dir / target / path.name
        (self.drop_dir / target / f"{path.name}.report.json").write_text(
            json.dumps(report.to_json(), ensure_ascii=False, indent=2)
        )
        path.replace(destination)
        state_path.unlink(missing_ok=True)
        level = logging.WARNING if report.problems else logging.INFO
        logger.log(
            level,
            "TOS file %s (%s): %d of %d events emitted, %d problems",
            path.name,
            report.format,
            len(report.seqs),
            report.events_found,
            len(report.problems),
        )

    def run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except OSError:
                logger.exception("TOS feed: reading %s failed", self.drop_dir)
            stop.wait(interval_s)


def serve_http_drop(drop_dir: Path, port: int) -> ThreadingHTTPServer:
    """Accept ``POST /drop/{name}`` on 127.0.0.1 and write the body into drop_dir atomically."""

    class DropHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's method name)
            name = self.path.removeprefix("/drop/")
            if not self.path.startswith("/drop/") or not name or "/" in name or name.startswith("."):
                self.send_error(404, "POST /drop/{file name}")
                return
            length_text = self.headers.get("Content-Length") or ""
            if not length_text.isdigit():
                self.send_error(411, "Content-Length is missing or not a number")
                return
            length = int(length_text)
            if length > MAX_FILE_BYTES:
                self.send_error(413, f"file exceeds {MAX_FILE_BYTES} bytes")
                return

            temporary = drop_dir / f".{name}.tmp"
            temporary.write_bytes(self.rfile.read(length))
            temporary.replace(drop_dir / name)
            self.send_response(202)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("HTTP drop: " + format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), DropHandler)
    threading.Thread(target=server.serve_forever, name="tos-http-drop", daemon=True).start()
    return server


def run(settings: TosFeedSettings) -> None:
    """Run the edge agent of a tos_feed device with this feed as its adapter."""
    import signal

    from edge.agent import EdgeAgent
    from kouan.devices import DeviceIdentity

    identity = DeviceIdentity.load(settings.home, settings.device_id)
    agent = EdgeAgent(identity, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    feed = TosFeed(agent.emit, settings.drop_dir, settings.tos_timezone, settings.tos_sender_timezones)
    server = serve_http_drop(settings.drop_dir, settings.tos_http_port) if settings.tos_http_port else None
    agent.start()
    logger.info("TOS feed for %s watching %s", identity.device_id, settings.drop_dir)
    feed.run(stop, settings.tos_poll_interval_s)
    if server is not None:
        server.shutdown()
    agent.stop()
