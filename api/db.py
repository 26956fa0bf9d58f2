"""The API's database pool, created with the application and closed with it."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from psycopg import Connection
from psycopg_pool import ConnectionPool


def connection(request: Request) -> Iterator[Connection]:
    """FastAPI dependency: one pooled connection per request, in autocommit mode."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn
