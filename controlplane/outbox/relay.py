"""The outbox relay: claim due rows with ``FOR UPDATE SKIP LOCKED``, publish, mark.

Runs as a background component of every API process and alone as ``caracal relay``
(``controlplane.cli.relay``). Several relays share the table safely: a row is claimed by one
relay at a time, and a claim lasts for its transaction, so a relay that dies mid-batch
releases its rows to the next one (docs/outbox.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from controlplane.background import background
from controlplane.db.pool import Database
from controlplane.metrics.outbox import outbox_pending, outbox_published
from controlplane.outbox.enqueue import WAKEUP_CHANNEL, OutboxMessage
from controlplane.outbox.publishers import Publisher, PublisherUnavailable, publishers_for
from controlplane.settings import Settings

log = logging.getLogger("controlplane.relay")

_CLAIM = (
    "SELECT zone_id, id, topic, payload, created_at, attempts FROM outbox"
    " WHERE published_at IS NULL AND next_attempt_at <= now()"
    " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
)
_MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL"
    " WHERE (zone_id, id) IN (SELECT * FROM unnest(%s::text[], %s::uuid[]))"
)
_MARK_FAILED = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = %s,"
    " next_attempt_at = now() + make_interval(secs => %s) WHERE zone_id = %s AND id = %s"
)
_MAX_ERROR_CHARS = 1000
#: Published rows are kept this long (for inspection), then deleted by the relays.
RETENTION = "7 days"
_PRUNE_EVERY_SECONDS = 60.0
_PENDING = "SELECT count(*) AS pending FROM outbox WHERE published_at IS NULL"
_PRUNE = (
    "DELETE FROM outbox WHERE (zone_id, id) IN (SELECT zone_id, id FROM outbox"
    " WHERE published_at < now() - %s::interval LIMIT 10000)"
)


def backoff_seconds(attempts: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Delay before retry number ``attempts + 1``: 0.5 s, 1 s, 2 s, … capped at one minute."""
    return min(cap, base * 2 ** min(attempts, 20))


class Relay:
    """Publishes outbox rows through every publisher, at least once."""

    def __init__(
        self,
        db: Database,
        publishers: Sequence[Publisher],
        *,
        batch_size: int = 100,
        sweep_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.publishers = list(publishers)
        self.batch_size = batch_size
        self.sweep_seconds = sweep_seconds

    async def run_once(self) -> int:
        """Claim one batch of due rows and publish it; return how many rows were claimed."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_CLAIM, (self.batch_size,))
            rows = await cur.fetchall()
            published: list[dict[str, Any]] = []
            # A publisher found unreachable is not tried again in this batch: against a Redis
            # that is down, each try would wait for its timeout while the claim holds its locks.
            unreachable: dict[str, str] = {}
            for row in rows:
                error = await self._publish(conn, row, unreachable)
                if error is None:
                    published.append(row)
                    continue
                delay = backoff_seconds(row["attempts"])
                log.warning(
                    "outbox publish failed",
                    extra={"outbox_id": str(row["id"]), "error": error, "retry_in": delay},
                )
                await conn.execute(
                    _MARK_FAILED, (error[:_MAX_ERROR_CHARS], delay, row["zone_id"], row["id"])
                )
            if published:
                await conn.execute(
                    _MARK_PUBLISHED,
                    ([r["zone_id"] for r in published], [r["id"] for r in published]),
                )
        return len(rows)

    async def _publish(
        self, conn: Any, row: dict[str, Any], unreachable: dict[str, str]
    ) -> str | None:
        """Send one row through every publisher; the first failure as text, or None. A
        publisher in ``unreachable`` is not tried; one that raises ``PublisherUnavailable``
        is added to it."""
        message = OutboxMessage(
            id=str(row["id"]),
            zone_id=row["zone_id"],
            topic=row["topic"],
            payload=row["payload"],
            created_at=row["created_at"],
        )
        for publisher in self.publishers:
            if publisher.name in unreachable:
                return f"{unreachable[publisher.name]} (not tried again in this batch)"
            try:
                async with conn.transaction():  # a savepoint: a failure keeps the claim intact
                    await publisher.publish(conn, message)
                outbox_published(publisher.name, message.created_at)
            except Exception as exc:
                error = f"{publisher.name}: {type(exc).__name__}: {exc}"
                if isinstance(exc, PublisherUnavailable):
                    unreachable[publisher.name] = error
                return error
        return None

    async def drain(self) -> int:
        """Publish every due row; return how many rows were claimed in total."""
        total = 0
        while True:
            claimed = await self.run_once()
            total += claimed
            if claimed < self.batch_size:
                return total

    async def pending(self) -> int:
        """How many rows are not published yet (due or waiting for a retry)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_PENDING)
            row = await cur.fetchone()
        return int(row["pending"]) if row else 0

    async def prune(self) -> int:
        """Delete up to 10,000 rows published longer ago than ``RETENTION``; how many."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_PRUNE, (RETENTION,))
            return cur.rowcount

    async def run(self) -> None:
        """Forever: drain, then sleep until a wake-up NOTIFY or the sweep interval; count the
        backlog (for the metrics) at most once a sweep interval; prune old published rows
        about once a minute."""
        pruned_at = counted_at = 0.0
        while True:
            try:
                listener = await psycopg.AsyncConnection.connect(
                    self.db.url, autocommit=True, connect_timeout=5
                )
                async with listener:
                    await listener.execute(f"LISTEN {WAKEUP_CHANNEL}")
                    while True:
                        await self.drain()
                        if time.monotonic() - counted_at >= self.sweep_seconds:
                            counted_at = time.monotonic()
                            outbox_pending(await self.pending())
                        if time.monotonic() - pruned_at > _PRUNE_EVERY_SECONDS:
                            pruned_at = time.monotonic()
                            await self.prune()
                        async for _ in listener.notifies(timeout=self.sweep_seconds, stop_after=1):
                            pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay loop failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(min(self.sweep_seconds, 1.0))

    async def close(self) -> None:
        """Close the publishers."""
        for publisher in self.publishers:
            await publisher.close()


@asynccontextmanager
async def relay_component(db: Database, settings: Settings) -> AsyncIterator[None]:
    """Run a relay in the API process (unless ``CARACAL_RELAY_ENABLED=false``)."""
    if not settings.relay_enabled:
        yield
        return
    relay = Relay(db, publishers_for(settings))
    try:
        async with background(relay.run(), "outbox-relay"):
            yield
    finally:
        await relay.close()
