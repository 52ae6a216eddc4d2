"""The async connection pool: connections speak UTC and return rows as dicts.

Outage behaviour (docs/outages.md, "Database outage"):

* Waiting for a connection is bounded (``CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS``): past it,
  ``PoolTimeout`` (an ``OperationalError``), which the API answers as 503.
* A pooled connection whose server went away is found at checkout without a round trip: an
  idle connection has nothing to read, so a readable socket means the server sent its
  goodbye (``terminating connection``) or closed it. It is closed and replaced, and the
  checkout takes the next one.
* Reconnection gives up after ``RECONNECT_GIVE_UP_SECONDS`` instead of psycopg_pool's 5
  minutes with a back-off doubling up to minutes: once PostgreSQL is back, the next request
  (or a reconnection attempt at most about a second away) connects at once.
* ``run`` re-runs work that is safe to repeat (reads, authentication) once on a fresh
  connection when its connection broke under it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import ConnStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Conn = AsyncConnection[dict[str, Any]]
T = TypeVar("T")

log = logging.getLogger("controlplane.db")

#: Default longest wait for a pooled connection (``CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS``).
ACQUIRE_TIMEOUT_SECONDS = 2.0
#: A failing reconnection stops retrying after this long (psycopg_pool retries after ~1 s,
#: then doubles); a request that needs a connection starts a new attempt at once.
RECONNECT_GIVE_UP_SECONDS = 2.0
#: ``/ready`` answers within this long even when the database hangs.
PING_TIMEOUT_SECONDS = 0.5


def looks_alive(conn: Conn) -> bool:
    """False when an idle pooled connection is known to be dead (no round trip)."""
    pgconn = conn.pgconn
    if pgconn.status != ConnStatus.OK:
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return False
    # Idle means the server has nothing to say: anything there is an error or end of file.
    return not readable


def connection_broke(conn: Conn) -> bool:
    """True when ``conn`` is no longer usable (the server or the network went away)."""
    return conn.broken or conn.closed


class Database:
    """An async connection pool whose connections speak UTC and return rows as dicts."""

    def __init__(
        self,
        url: str,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.acquire_timeout = acquire_timeout
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=acquire_timeout,
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            kwargs={
                "row_factory": dict_row,
                "options": "-c TimeZone=UTC",
                # libpq counts whole seconds and at least 2.
                "connect_timeout": max(2, math.ceil(acquire_timeout)),
            },
            name="controlplane",
        )

    async def open(self) -> None:
        """Open the pool and wait until its minimum connections are ready."""
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def checkout(self, timeout: float | None = None) -> Conn:
        """A live connection from the pool within ``timeout`` (default: the acquire timeout);
        dead ones met on the way are closed and replaced. ``PoolTimeout`` past the wait."""
        deadline = time.monotonic() + (self.acquire_timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PoolTimeout("no live database connection within the acquire timeout")
            conn = await self.pool.getconn(timeout=remaining)
            if looks_alive(conn):
                return conn
            log.info("discarding a dead pooled connection")
            await conn.close()  # the pool replaces a closed connection it gets back
            await self.pool.putconn(conn)

    @asynccontextmanager
    async def transaction(self, timeout: float | None = None) -> AsyncIterator[Conn]:
        """One connection in one transaction: committed on success, rolled back on error."""
        conn = await self.checkout(timeout)
        try:
            async with conn:
                yield conn
        finally:
            await self.pool.putconn(conn)

    async def run(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """``work`` in one transaction, run again once on a fresh connection if its
        connection broke under it. Only for work that is safe to repeat."""
        conn: Conn | None = None
        try:
            async with self.transaction() as conn:
                return await work(conn)
        except psycopg.OperationalError:
            if conn is None or not connection_broke(conn):
                raise
            log.info("database connection lost during a repeatable transaction; retrying")
        async with self.transaction() as conn:
            return await work(conn)

    async def ping(self) -> bool:
        """True when the database answers a trivial query within ``PING_TIMEOUT_SECONDS``."""

        async def answer() -> None:
            async with self.transaction(timeout=PING_TIMEOUT_SECONDS) as conn:
                await conn.execute("SELECT 1")

        try:
            await asyncio.wait_for(answer(), PING_TIMEOUT_SECONDS)
            return True
        except Exception:
            return False
