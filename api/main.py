"""The Kouan HTTP API (FastAPI) under /api/v1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import ConnectionPool

from api.containers.routes import router as containers_router
from api.dashboard.routes import router as dashboard_router
from api.declarations.routes import router as declarations_router
from api.errors import ApiError, api_error_handler, error_body, validation_error_handler
from api.settings import ApiSettings

logger = logging.getLogger(__name__)


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
        logger.info("API connected to the database")
        yield
        pool.close()

    app = FastAPI(
        title="Kouan API",
        version="1.0.0",
        description="Port-of-entry supervision: container visits, declarations, alerts, gate decisions.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # noqa: ANN001, ANN202
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            from fastapi.responses import JSONResponse

            return JSONResponse(
                error_body(
                    request,
                    "body_too_large",
                    f"Request body exceeds {settings.max_body_bytes} bytes.",
                    f"请求体超过 {settings.max_body_bytes} 字节上限。",
                ),
                status_code=413,
            )
        return await call_next(request)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness and database reachability."""
        with app.state.pool.connection() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok"}

    app.include_router(declarations_router)
    app.include_router(containers_router)
    app.include_router(dashboard_router)
    return app
