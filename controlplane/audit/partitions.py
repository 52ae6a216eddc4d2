"""The monthly partitions of ``audit_events``: made ahead of time, listed, pruned.

Ahead of time: every migration run (start-up, ``caracal migrate``) creates the partitions
from last month to three months ahead (a post-migrate step this module registers with
``controlplane.db.migrations``). A process that runs for months would otherwise outlive
them and send its rows to the DEFAULT partition, so each API process also runs the same
idempotent SQL function every few hours, under the migrations' advisory lock. (Rows that
reached DEFAULT anyway are moved into their month's partition when it is created:
``sql/0008``.)

Retention (``caracal audit prune --older-than 90d [--dry-run]``, ``controlplane.cli.audit``):
a partition is dropped only when its upper bound is at or before ``now() - older_than``, so
no month is ever cut in part; rows in the DEFAULT partition are never deleted. Audit rows
are immutable (a trigger refuses DELETE); dropping a partition is the one way they leave
the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from controlplane.audit.admin_events import record_event
from controlplane.db.migrations import AFTER_MIGRATE, MIGRATION_LOCK_KEY
from controlplane.db.pool import Conn, Database

__all__ = [
    "MONTHS_AHEAD",
    "Partition",
    "audit_partitions",
    "audit_partitions_component",
    "create_month_partition",
    "ensure_audit_partitions",
    "prune",
    "prune_at",
]

log = logging.getLogger("controlplane.audit_partitions")

#: How often a running process makes sure the coming months have their partitions.
INTERVAL_SECONDS = 6 * 3600
MONTHS_AHEAD = 3


def _ensure_after_migrate(conn: psycopg.Connection[Any]) -> None:
    """The post-migrate step: the partitions from last month to ``MONTHS_AHEAD`` ahead."""
    conn.execute("SELECT caracal_ensure_audit_partitions(%s)", (MONTHS_AHEAD,))


AFTER_MIGRATE.append(_ensure_after_migrate)


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


# -- listing and retention ---------------------------------------------------------------------

LOCK_TIMEOUT = "10s"

_PARTITIONS_SQL = """
SELECT n.nspname AS schema, c.relname AS name,
       (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lower,
       (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper,
       b.bound = 'DEFAULT' AS is_default
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
WHERE i.inhparent = 'audit_events'::regclass
ORDER BY upper NULLS LAST, c.relname
"""


class Partition:
    """One partition of ``audit_events`` and its range (None for MINVALUE/MAXVALUE)."""

    __slots__ = ("is_default", "lower", "name", "schema", "upper")

    def __init__(
        self,
        schema: str,
        name: str,
        lower: datetime | None,
        upper: datetime | None,
        is_default: bool,
    ) -> None:
        self.schema = schema
        self.name = name
        self.lower = lower
        self.upper = upper
        self.is_default = is_default


async def audit_partitions(conn: Conn) -> list[Partition]:
    """Every partition of ``audit_events``, oldest upper bound first (DEFAULT last)."""
    cur = await conn.execute(_PARTITIONS_SQL)
    return [Partition(**row) for row in await cur.fetchall()]


async def create_month_partition(conn: Conn, month: date) -> str:
    """Create the partition for the month containing ``month`` (UTC) if missing; its name.

    Fails if the DEFAULT partition already holds rows of that month (PostgreSQL refuses).
    """
    start = month.replace(day=1)
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    name = f"audit_events_{start:%Y%m}"
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (name,))
    row = await cur.fetchone()
    if not (row and row["present"]):
        await conn.execute(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF audit_events FOR VALUES FROM ({}) TO ({})"
            ).format(
                sql.Identifier(name),
                sql.Literal(f"{start.isoformat()} 00:00:00+00"),
                sql.Literal(f"{end.isoformat()} 00:00:00+00"),
            )
        )
    return name


async def prune(conn: Conn, older_than_seconds: int, *, dry_run: bool = False) -> list[str]:
    """Drop every range partition whose upper bound <= now() - older_than; their names.

    Each drop commits on its own (``conn`` must be in autocommit mode), with a lock timeout
    so a long query on the table delays the prune instead of blocking every writer.
    """
    if older_than_seconds <= 0:
        raise ValueError("older_than must be positive")
    cur = await conn.execute(
        "SELECT now() - make_interval(secs => %s) AS cutoff", (older_than_seconds,)
    )
    row = await cur.fetchone()
    assert row is not None
    cutoff: datetime = row["cutoff"]
    doomed = [
        p
        for p in await audit_partitions(conn)
        if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]
    if dry_run or not doomed:
        return [p.name for p in doomed]
    keys = 0
    for partition in doomed:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute(
                sql.SQL("DROP TABLE {}.{}").format(
                    sql.Identifier(partition.schema), sql.Identifier(partition.name)
                )
            )
            # The idempotency keys of the OPA decision-log events that partition held
            # (controlplane.fleet.decision_logs) go with them.
            cur = await conn.execute(
                "DELETE FROM opa_decision_ids WHERE occurred_at < %s"
                " AND (%s::timestamptz IS NULL OR occurred_at >= %s)",
                (partition.upper, partition.lower, partition.lower),
            )
            keys += cur.rowcount
    async with conn.transaction():
        await record_event(
            conn,
            zone_id=None,
            event_type="audit.pruned",
            actor_id=None,
            metadata={
                "partitions": [p.name for p in doomed],
                "cutoff": cutoff.isoformat(),
                "older_than_seconds": older_than_seconds,
                "opa_decision_ids": keys,
            },
        )
    return [p.name for p in doomed]


async def prune_at(url: str, seconds: int, dry_run: bool) -> list[str]:
    """``prune`` on a connection of its own (autocommit, UTC) to the database at ``url``."""
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    conn: Any = await AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC"
    )
    async with conn:
        return await prune(conn, seconds, dry_run=dry_run)
