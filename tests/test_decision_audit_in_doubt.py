"""A decision audit batch whose connection breaks after the INSERT was sent (in doubt).

The backend running the INSERT is terminated while the INSERT waits on a lock the test
holds: the writer cannot know whether it committed, sends the batch again on a fresh
connection (``ON CONFLICT DO NOTHING``), and answers only once the row is certainly there
exactly once; if even that fails, the decision fails as in doubt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from controlplane.audit.decision_events import AuditWriteError, DecisionAuditWriter, encode_batch
from tests.test_decision_audit import event

_INSERT_ROW = (
    "INSERT INTO audit_events (id, zone_id, event_type, request_id, decision, occurred_at)"
    " SELECT id, zone_id, event_type, request_id, decision, occurred_at"
    " FROM jsonb_to_recordset(%s::jsonb) AS t(id uuid, zone_id text, event_type text,"
    " request_id text, decision text, occurred_at timestamptz)"
)


def _terminate_the_blocked_insert(url: str) -> None:
    """Wait for the writer's INSERT to block on the lock, then terminate its backend."""
    with psycopg.connect(url, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO audit_events%%' AND datname = current_database()"
            ).fetchone()
            if row is not None:
                admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                return
            time.sleep(0.02)
    raise AssertionError("the writer's INSERT never blocked")


async def _write_with_broken_connection(
    url: str, ev: Any, *, retry_url: str | None = None
) -> BaseException | None:
    writer = DecisionAuditWriter(url)
    writer.start()
    try:
        await writer.write_all([event("warm-up")])  # the writer has its connection now
        if retry_url is not None:
            writer.url = retry_url  # the next connection attempt will fail
        locker = await psycopg.AsyncConnection.connect(url)
        try:
            await locker.execute("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
            write = asyncio.create_task(writer.write_all([ev]))
            await asyncio.to_thread(_terminate_the_blocked_insert, url)
            await asyncio.sleep(0.2)
        finally:
            await locker.rollback()
            await locker.close()
        try:
            await asyncio.wait_for(write, 10)
        except AuditWriteError as exc:
            return exc
        return None
    finally:
        await writer.close()


def _rows(db: psycopg.Connection[Any], event_id: Any) -> int:
    return db.execute(
        "SELECT count(*) AS n FROM audit_events WHERE id = %s", (event_id,)
    ).fetchone()["n"]


def test_a_batch_in_doubt_is_sent_again_and_answered(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    ev = event("z1")
    assert asyncio.run(_write_with_broken_connection(database_url, ev)) is None
    assert _rows(db, ev.id) == 1


def test_a_batch_in_doubt_that_had_committed_is_not_written_twice(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    ev = event("z1")
    # The row as if the first INSERT had committed just before its connection broke.
    db.execute(_INSERT_ROW, (encode_batch([ev]),))
    assert asyncio.run(_write_with_broken_connection(database_url, ev)) is None
    assert _rows(db, ev.id) == 1


def test_a_batch_still_in_doubt_fails_as_in_doubt(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    ev = event("z1")
    error = asyncio.run(
        _write_with_broken_connection(
            database_url, ev, retry_url="postgresql://127.0.0.1:1/none?connect_timeout=2"
        )
    )
    assert isinstance(error, AuditWriteError)
    assert error.in_doubt
    assert _rows(db, ev.id) == 0


def test_a_refused_connection_is_not_in_doubt() -> None:
    async def main() -> BaseException | None:
        writer = DecisionAuditWriter("postgresql://127.0.0.1:1/none?connect_timeout=2")
        writer.start()
        try:
            await writer.write_all([event("z1")])
        except AuditWriteError as exc:
            return exc
        finally:
            await writer.close()
        return None

    error = asyncio.run(main())
    assert isinstance(error, AuditWriteError)
    assert not error.in_doubt
