"""The API's database pool, created with the application and closed with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import Connection
from psycopg_pool import ConnectionPool


def connection(request: Request) -> Iterator[Connection]:
    """FastAPI dependency: one pooled connection per request, in autocommit mode."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn


# Returned to the pool when the route function returns, not when the response has
# been sent, so that a live stream does not hold a connection for its lifetime.
Db = Annotated[Connection, Depends(connection, scope="function")]
