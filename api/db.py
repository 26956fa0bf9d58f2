"""The API's database pool, created with the application and closed with it.

Route functions and their dependencies are synchronous and run in the server's
worker threads, each step of a request in whichever thread is free. A request that
has a pooled connection therefore needs a free thread for its next step. If
every worker thread were blocked waiting for a connection, the requests holding
the connections could never finish, and every request would wait until the pool
gave up. To rule that out, a request waits for a connection slot on the event loop,
without a thread. There are exactly as many slots as pooled connections, so a
thread requests a connection from the pool only when one is free for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError

# How long a request waits for a database connection before the API responds with 503.
CONNECTION_WAIT_S = 10.0


class DatabaseBusy(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "database_busy",
            f"No database connection became free within {CONNECTION_WAIT_S:.0f} s; retry shortly.",
            f"{CONNECTION_WAIT_S:.0f} 秒内没有空闲的数据库连接，请稍后重试。",
            headers={"Retry-After": "1"},
        )


async def connection(request: Request) -> AsyncIterator[Connection]:
    """FastAPI dependency: one pooled connection per request, in autocommit mode."""
    pool: ConnectionPool = request.app.state.pool
    slots: asyncio.Semaphore = request.app.state.connection_slots
    try:
        await asyncio.wait_for(slots.acquire(), CONNECTION_WAIT_S)
    except TimeoutError as exc:
        raise DatabaseBusy() from exc
    try:
        try:
            # A slot guarantees a free connection unless a route outside this
            # dependency (health, metrics) is using one for a moment.
            conn = await run_in_threadpool(pool.getconn, CONNECTION_WAIT_S)
        except PoolTimeout as exc:
            raise DatabaseBusy() from exc
        try:
            yield conn
        finally:
            await run_in_threadpool(pool.putconn, conn)
    finally:
        slots.release()


# Returned to the pool when the route function returns, not when the response has
# been sent, so that a live stream does not hold a connection for its lifetime.
Db = Annotated[Connection, Depends(connection, scope="function")]
