"""The database pool gauge: idle and busy connections, requests waiting for one."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from controlplane.metrics.definitions import DB_POOL_CONNECTIONS

_idle, _busy, _waiting = (DB_POOL_CONNECTIONS.labels(s) for s in ("idle", "busy", "waiting"))


def sample_pool(pool: AsyncConnectionPool[Any]) -> None:
    """Set the gauge from the pool's current statistics."""
    stats = pool.get_stats()
    size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
    _idle.set(available)
    _busy.set(max(0, size - available))
    _waiting.set(stats.get("requests_waiting", 0))
