"""HTTP endpoint that OCR, plate and scanner cameras push their results to.

``POST /v1/frames`` takes one JSON object (a frame) per request, at most
``MAX_BODY_BYTES``. The ``type`` member selects what the frame is:

=============  =====================================================================
type           members (optional ones in brackets)
=============  =====================================================================
arrival        [at], [passage_id]
container      container_number, [confidence], [camera_id], [image_ref], [at],
               [size_type], [position: front | rear | single]
plate          plate, [confidence], [camera_id], [image_ref], [at], [trailer: bool]
seal           seal_number, [container_number], [camera_id], [at], [source]
declaration    declaration_number
departure      [at]
scan           container_number, result (clear | suspicious | failed), [confidence],
               [camera_id], [image_ref], [at]
=============  =====================================================================

``at`` is an RFC 3339 time with a UTC offset; the receive time is used without it.
Responses: 202 ``{"passage_id"}`` for reads joined to a passage, 201 ``{"seq"}``
for a frame that produced an event (departure, scan), 400 for an invalid frame,
503 ``{"error": "outbox_full"}`` when the outbox rejected the event. A 201 or 202
means the event or read is committed to the outbox; after a 503 the camera keeps
the result and posts it again later.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from edge.adapters.lane import LaneFusion
from edge.agent import EdgeAgent
from edge.outbox import OutboxFull

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class FrameError(ValueError):
    """A camera frame is missing a member or has an invalid value."""


def _time(frame: dict[str, Any]) -> datetime:
    text = frame.get("at")
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise FrameError(f"'at' {text!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise FrameError(f"'at' {text!r} has no UTC offset")
    return moment


def _required(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value.strip():
        raise FrameError(f"frame of type {frame.get('type')!r} needs the text member {name!r}")
    return value


def camera_read(frame: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    """Return a contract ``Read`` of one camera result, with its provenance."""
    read: dict[str, Any] = {
        "raw": _required(frame, name),
        "source": frame.get("source", source),
        "read_at": _time(frame).isoformat(),
    }
    if frame.get("confidence") is not None:
        read["confidence"] = frame["confidence"]
    if frame.get("camera_id"):
        read["sensor_id"] = frame["camera_id"]
    if frame.get("image_ref"):
        read["image_ref"] = frame["image_ref"]
    return read


class FrameRouter:
    """Apply one frame to the lane fusion or the agent; return (HTTP status, body)."""

    def __init__(self, agent: EdgeAgent, fusion: LaneFusion | None) -> None:
        self.agent = agent
        self.fusion = fusion

    def apply(self, frame: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kind = frame.get("type")
        if kind == "scan":
            return self._scan(frame)
        if self.fusion is None:
            raise FrameError(f"frame type {kind!r} needs a lane device; this device only takes 'scan'")

        fusion = self.fusion
        if kind == "arrival":
            return HTTPStatus.ACCEPTED, {"passage_id": fusion.arrival(_time(frame), frame.get("passage_id"))}
        if kind == "container":
            size = frame.get("size_type")
            size_read = {"raw": size, "source": "ocr"} if size else None
            read = camera_read(frame, "container_number", "ocr")
            return HTTPStatus.ACCEPTED, {
                "passage_id": fusion.add_container(read, size_read, frame.get("position"))
            }
        if kind == "plate":
            read = camera_read(frame, "plate", "lpr")
            return HTTPStatus.ACCEPTED, {"passage_id": fusion.add_plate(read, bool(frame.get("trailer")))}
        if kind == "seal":
            read = camera_read(frame, "seal_number", "ocr")
            return HTTPStatus.ACCEPTED, {"passage_id": fusion.add_seal(read, frame.get("container_number"))}
        if kind == "declaration":
            fusion.set_declaration(_required(frame, "declaration_number"))
            return HTTPStatus.ACCEPTED, {}
        if kind == "departure":
            closed = fusion.departure()
            if closed is None:
                return HTTPStatus.OK, {"passage_id": None}
            return HTTPStatus.CREATED, {"passage_id": closed[0], "seq": closed[1]}
        raise FrameError(
            f"frame type {kind!r} is not one of arrival, container, plate, seal, declaration, departure, scan"
        )

    def _scan(self, frame: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        payload = {
            "lane_id": frame.get("lane_id") or self.agent.identity.lane_id,
            "container_number": camera_read(frame, "container_number", "ocr"),
            "result": frame.get("result"),
        }
        if frame.get("image_ref"):
            payload["image_ref"] = frame["image_ref"]
        seq = self.agent.emit("scan.result", payload, occurred_at=_time(frame))
        return HTTPStatus.CREATED, {"seq": seq}


class _Handler(BaseHTTPRequestHandler):
    server: CameraEndpoint

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        if self.path != "/v1/frames":
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no endpoint {self.path}"})
            return

        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY_BYTES + 1  # An unreadable length is answered like an oversized body.
        if length > MAX_BODY_BYTES:
            self._answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": "too_large", "message": f"frame of {length} bytes exceeds {MAX_BODY_BYTES}"},
            )
            return
        try:
            frame = json.loads(self.rfile.read(length))
            if not isinstance(frame, dict):
                raise FrameError("a frame is a JSON object")
            status, body = self.server.router.apply(frame)
        except OutboxFull as exc:
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "outbox_full", "message": str(exc)})
            return
        except (json.JSONDecodeError, UnicodeDecodeError, FrameError, ValueError, ValidationError) as exc:
            message = str(exc).splitlines()[0][:300]
            self._answer(HTTPStatus.BAD_REQUEST, {"error": "invalid_frame", "message": message})
            return
        self._answer(status, body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/v1/status":
            self._answer(HTTPStatus.OK, self.server.router.agent.status())
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no endpoint {self.path}"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("Camera endpoint: " + format, *args)


class CameraEndpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, router: FrameRouter) -> None:
        super().__init__((host, port), _Handler)
        self.router = router
        self._thread = threading.Thread(target=self.serve_forever, name="camera-endpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logger.info("Camera endpoint listening on http://%s:%d/v1/frames", *self.server_address[:2])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
