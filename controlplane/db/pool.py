"""The async connection pool: connections speak UTC and return rows as dicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

Conn = AsyncConnection[dict[str, Any]]


class Database:
    """An async connection pool whose connections speak UTC and return rows as dicts."""

    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "options": "-c TimeZone=UTC"},
            name="controlplane",
        )

    async def open(self) -> None:
        """Open the pool and wait until its minimum connections are ready."""
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One connection in one transaction: committed on success, rolled back on error."""
        async with self.pool.connection() as conn:
            yield conn

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:
            return False
