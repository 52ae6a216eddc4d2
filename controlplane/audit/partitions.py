"""Audit partitions ahead of time, while the service runs.

Every migration run (start-up) creates the monthly ``audit_events`` partitions from last
month to three months ahead. A process that runs for months would otherwise outlive them and
send its rows to the DEFAULT partition, so each API process also runs the same idempotent
SQL function every few hours, under the migrations' advisory lock. (Rows that reached DEFAULT
anyway are moved into their month's partition when it is created: ``sql/0008``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from controlplane.db.migrations import MIGRATION_LOCK_KEY
from controlplane.db.pool import Database

log = logging.getLogger("controlplane.audit_partitions")

#: How often a running process makes sure the coming months have their partitions.
INTERVAL_SECONDS = 6 * 3600
MONTHS_AHEAD = 3


async def ensure_audit_partitions(db: Database) -> None:
    """Create the missing partitions from last month to ``MONTHS_AHEAD`` months ahead."""
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        await conn.execute("SELECT caracal_ensure_audit_partitions(%s)", (MONTHS_AHEAD,))


async def _every_interval(db: Database) -> None:
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        try:
            await ensure_audit_partitions(db)
        except Exception as exc:  # retried at the next interval; the service goes on
            log.warning("audit partitions not created", extra={"error": repr(exc)})


@asynccontextmanager
async def audit_partitions_component(db: Database) -> AsyncIterator[None]:
    """Run the periodic partition check for the life of the process."""
    task = asyncio.create_task(_every_interval(db), name="audit-partitions")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
