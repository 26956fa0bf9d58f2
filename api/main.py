"""The Kouan HTTP API (FastAPI) under /api/v1."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.alerts.routes import router as alerts_router
from api.audit.routes import router as audit_router
from api.containers.routes import router as containers_router
from api.dashboard.routes import router as dashboard_router
from api.dcsa.routes import router as dcsa_router
from api.decisions.routes import router as decisions_router
from api.declarations.routes import router as declarations_router
from api.devices.routes import router as devices_router
from api.errors import (
    ERROR_RESPONSES,
    ApiError,
    api_error_handler,
    error_body,
    http_error_handler,
    internal_error_handler,
    validation_error_handler,
)
from api.events.routes import router as events_router
from api.metrics import MetricsSource
from api.middleware import BodyLimitMiddleware, LatencyMiddleware
from api.publisher import CommandPublisher
from api.security.auth import Principal, require
from api.security.ratelimit import SlidingWindowLimiter
from api.security.routes import router as auth_router
from api.security.tokens import load_jwt_secret
from api.settings import ApiSettings
from api.statistics.routes import router as statistics_router

logger = logging.getLogger(__name__)

DESCRIPTION = """Port-of-entry supervision: container visits, declarations, alerts, gate decisions.

Authenticate with a bearer token from `POST /api/v1/auth/token` (people) or an
`X-API-Key` header (systems). Errors carry a stable `code` and a `message` in the
language of `Accept-Language` (zh-CN by default, en). Lists return
`{"items": [...], "next_cursor": ...}`; pass `?cursor=` for the next page.
"""


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Return 422 for a value PostgreSQL cannot store (e.g. a NUL character in text)."""
    logger.info("Rejected a value the database cannot store on %s: %s", request.url.path, exc)
    return JSONResponse(
        error_body(
            request,
            "invalid_value",
            "A value in the request cannot be stored (for example it contains a NUL character).",
            "请求中的某个值无法保存（例如包含 NUL 字符）。",
        ),
        status_code=422,
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            kwargs={"autocommit": True},
            open=False,
        )
        pool.open(wait=True, timeout=30)
        app.state.pool = pool
        app.state.connection_slots = asyncio.Semaphore(settings.pool_max_size)
        app.state.metrics = MetricsSource(pool, settings.metrics_cache_s)
        app.state.publisher = CommandPublisher(settings)
        app.state.publisher.start()
        logger.info("API connected to the database")
        yield
        app.state.publisher.stop()
        pool.close()

    app = FastAPI(title="Kouan API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.jwt_secret = load_jwt_secret(settings.jwt_secret, settings.home)
    app.state.request_limiter = SlidingWindowLimiter(settings.rate_limit_per_minute)
    app.state.login_limiter = SlidingWindowLimiter(settings.login_limit_per_minute)
    app.state.open_streams = 0
    app.state.stream_lock = threading.Lock()

    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(psycopg.DataError, database_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness and database reachability."""
        with app.state.pool.connection() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={**ERROR_RESPONSES, 200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def metrics(principal: Annotated[Principal, Depends(require("metrics:read"))]) -> Response:
        """Prometheus metrics of this API process and, read from the database, of ingest,
        quarantine, decisions, alerts and devices of the caller's sites."""
        body = app.state.metrics.render(principal.sites)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    for router in (
        auth_router,
        declarations_router,
        containers_router,
        alerts_router,
        decisions_router,
        devices_router,
        statistics_router,
        events_router,
        audit_router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(dcsa_router)
    app.include_router(dashboard_router)
    return app
