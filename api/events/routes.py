from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from api.actions import action_errors
from api.db import Db
from api.errors import ApiError, NotFound, prefers_english
from api.events import service, stream
from api.events.schemas import CorrectionPublic, CorrectionRequest, FeedEvent
from api.metrics import STREAM_CLIENTS
from api.pagination import Cursor, Limit, Page
from api.params import CodeQuery, Moment, SiteQuery
from api.security.auth import Principal, require, scoped_sites
from collector.correlation import actions

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events", response_model=Page[FeedEvent])
def event_feed(
    request: Request,
    principal: Annotated[Principal, Depends(require("events:read"))],
    conn: Db,
    site: SiteQuery = None,
    kind: Annotated[CodeQuery, Query(description="Event kind, e.g. gate.passage")] = None,
    since: Annotated[Moment | None, Query(description="Stored at or after; only without a cursor")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict:
    """List events stored since the cursor, in stored order. The feed never ends: keep the last
    next_cursor and ask again later. Events appear a few seconds after they are stored."""
    return service.feed(
        conn,
        scoped_sites(conn, principal, site),
        kind=kind,
        since=since if cursor is None else None,
        settle_s=request.app.state.settings.feed_settle_s,
        limit=limit,
        cursor=cursor,
    )


class _StreamSlot:
    """One of the ``stream_max_clients`` live streams a process serves at once."""

    def __init__(self, request: Request) -> None:
        self.state = request.app.state
        self.released = False
        with self.state.stream_lock:
            if self.state.open_streams >= self.state.settings.stream_max_clients:
                raise ApiError(
                    503,
                    "too_many_streams",
                    "Too many live streams are open; retry in a minute or use the event feed.",
                    "实时推送连接数已满，请一分钟后重试或改用事件拉取接口。",
                    headers={"Retry-After": "60"},
                )
            self.state.open_streams += 1
        STREAM_CLIENTS.inc()

    def release(self) -> None:
        """Free the slot; later calls do nothing."""
        with self.state.stream_lock:
            if self.released:
                return
            self.released = True
            self.state.open_streams -= 1
        STREAM_CLIENTS.dec()


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
def live_stream(
    request: Request,
    principal: Annotated[Principal, Depends(require("stream:read"))],
    conn: Db,
    site: SiteQuery = None,
    max_seconds: Annotated[
        int | None, Query(ge=1, le=3600, description="End the stream after this many seconds")
    ] = None,
) -> EventSourceResponse:
    """Send server-sent events: ``visit`` (a container visit changed), ``alert`` (raised, repeated,
    acknowledged or resolved), comment heartbeats, and ``end`` when the stream's time is up."""
    sites = scoped_sites(conn, principal, site)
    settings = request.app.state.settings
    duration = min(max_seconds or settings.stream_max_duration_s, settings.stream_max_duration_s)
    slot = _StreamSlot(request)

    async def events():  # noqa: ANN202
        try:
            async for item in stream.changes(
                request.app.state.pool, sites, prefers_english(request), settings.stream_poll_s, duration
            ):
                yield item
        finally:
            slot.release()

    # The background task frees the slot also when the client leaves before the
    # generator starts, in which case the generator's finally clause never runs.
    return EventSourceResponse(
        events(), ping=int(settings.stream_heartbeat_s), background=BackgroundTask(slot.release)
    )


@router.post(
    "/events/{event_id}/corrections",
    response_model=CorrectionPublic,
    status_code=201,
)
def correct_read(
    event_id: uuid.UUID,
    body: CorrectionRequest,
    principal: Annotated[Principal, Depends(require("reads:correct"))],
    conn: Db,
) -> dict:
    """Correct a misread container or seal number (customs officers only). The correction is a
    new read.correction event pointing to the original; the visits concerned are re-evaluated and
    the action is audited."""
    if not principal.sees(body.site_id):
        raise NotFound("Event", "事件", str(event_id))
    with action_errors("Event", "事件", str(event_id)):
        correction_id = actions.correct_read(
            conn,
            body.site_id,
            event_id,
            body.field,
            body.corrected,
            principal.actor,
            body.reason,
            body.original,
        )
    return {"event_id": event_id, "correction_event_id": correction_id}
