"""``python -m controlplane audit prune``: whole monthly partitions, never part of a month."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from controlplane.audit.partitions import create_month_partition, ensure_audit_partitions
from controlplane.db.migrations import migrate
from controlplane.db.pool import Database
from tests.api.runtime_rows import insert_event, now


def months_back(count: int) -> date:
    """The first day of the month ``count`` months before this one (UTC)."""
    today = now().date().replace(day=1)
    index = today.year * 12 + today.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def make_partitions(database_url: str, months: list[date]) -> None:
    async def run() -> None:
        conn = await AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row)
        async with conn:
            for month in months:
                await create_month_partition(conn, month)
                await create_month_partition(conn, month)  # idempotent

    asyncio.run(run())


def partitions(db: psycopg.Connection[Any]) -> set[str]:
    rows = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_events'::regclass"
    ).fetchall()
    return {row["relname"] for row in rows}


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "CARACAL_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "controlplane", "audit", "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def count(db: psycopg.Connection[Any], table: str = "audit_events") -> int:
    row = db.execute(f"SELECT count(*) AS n FROM {table} WHERE event_type = 'old'").fetchone()
    assert row is not None
    return row["n"]


def test_prune_drops_only_partitions_entirely_older_than_the_cutoff(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    old_months = [months_back(n) for n in range(2, 8)]
    make_partitions(database_url, old_months)
    db.execute(
        "INSERT INTO zones (id, org_id, name, slug) VALUES ('z', 'default', 'Prune', 'prune')"
    )
    keys: dict[str, date] = {}
    for month in old_months:
        start = datetime(month.year, month.month, 1, tzinfo=now().tzinfo)
        for offset in (timedelta(hours=1), timedelta(days=27)):
            insert_event(db, "z", event_type="old", occurred_at=start + offset)
            key = f"opa-{month:%Y%m}-{offset.days}"
            db.execute(
                "INSERT INTO opa_decision_ids (zone_id, decision_id, occurred_at)"
                " VALUES ('z', %s, %s)",
                (key, start + offset),
            )
            keys[key] = month
    # a key far older than any partition (its event is in DEFAULT, which is never pruned)
    db.execute(
        "INSERT INTO opa_decision_ids VALUES ('z', 'opa-default', %s)",
        (now() - timedelta(days=3000),),
    )
    keys["opa-default"] = date(1900, 1, 1)
    # far older than any partition: lands in DEFAULT, which is never pruned
    insert_event(db, "z", event_type="old", occurred_at=now() - timedelta(days=3000))
    recent = insert_event(db, "z", event_type="recent")
    before = partitions(db)

    cutoff = now() - timedelta(days=90)
    expected = {
        f"audit_events_{m:%Y%m}"
        for m in old_months
        if datetime(next_month(m).year, next_month(m).month, 1, tzinfo=cutoff.tzinfo) <= cutoff
    }
    assert 3 <= len(expected) < len(old_months)  # the month containing the cutoff is kept

    dry = cli(database_url, "--older-than", "90d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert {line.split()[-1] for line in dry.stdout.splitlines()[:-1]} == expected
    assert partitions(db) == before

    done = cli(database_url, "--older-than", "90d")
    assert done.returncode == 0, done.stderr
    assert f"dropped {len(expected)} partition(s)" in done.stdout
    assert partitions(db) == before - expected
    assert "audit_events_default" in partitions(db)
    assert count(db) == 2 * (len(old_months) - len(expected)) + 1
    assert db.execute("SELECT 1 FROM audit_events WHERE id = %s", (recent,)).fetchone()
    event = db.execute("SELECT * FROM audit_events WHERE event_type = 'audit.pruned'").fetchone()
    assert event is not None and event["zone_id"] is None
    assert sorted(event["metadata_json"]["partitions"]) == sorted(expected)
    assert event["metadata_json"]["opa_decision_ids"] == 2 * len(expected)
    # The OPA decision-log keys of the dropped months went with them; the others stay.
    kept = db.execute("SELECT decision_id FROM opa_decision_ids ORDER BY decision_id").fetchall()
    assert [r["decision_id"] for r in kept] == sorted(
        key for key, month in keys.items() if f"audit_events_{month:%Y%m}" not in expected
    )

    again = cli(database_url, "--older-than", "90d")
    assert again.returncode == 0
    assert "dropped 0 partition(s)" in again.stdout


def test_prune_rejects_bad_durations(database_url: str) -> None:
    for value in ["ninety", "0d", "-5d"]:
        result = cli(database_url, "--older-than", value)
        assert result.returncode == 2, value
        assert "--older-than" in result.stderr


def test_rows_that_reached_the_default_partition_move_into_their_month(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    """A process that ran past the months created at its start-up sends rows to DEFAULT; the
    next partition check (a restart's migration, or the running service's own) moves them."""
    month = months_back(-3)  # three months ahead
    name = f"audit_events_{month:%Y%m}"
    db.execute(f"DROP TABLE {name}")
    event = insert_event(
        db, None, event_type="late", occurred_at=datetime(month.year, month.month, 15, tzinfo=UTC)
    )
    where = "SELECT tableoid::regclass::text AS part FROM audit_events WHERE id = %s"
    assert db.execute(where, (event,)).fetchone()["part"] == "audit_events_default"

    migrate(database_url)  # a restart: used to fail, the month's rows being in DEFAULT

    assert db.execute(where, (event,)).fetchone()["part"] == name
    try:  # still immutable where it now is
        db.execute("DELETE FROM audit_events WHERE id = %s", (event,))
        raise AssertionError("an audit row was deleted")
    except psycopg.errors.RestrictViolation:
        pass
    try:  # and DEFAULT refuses deletes as before
        insert_event(db, None, event_type="far", occurred_at=datetime(2999, 1, 1, tzinfo=UTC))
        db.execute("DELETE FROM audit_events WHERE event_type = 'far'")
        raise AssertionError("an audit row was deleted")
    except psycopg.errors.RestrictViolation:
        pass


def test_a_running_service_creates_the_coming_months_itself(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    month = months_back(-2)
    name = f"audit_events_{month:%Y%m}"
    db.execute(f"DROP TABLE {name}")

    async def run() -> None:
        database = Database(database_url, 1, 1)
        await database.open()
        try:
            await ensure_audit_partitions(database)
        finally:
            await database.close()

    asyncio.run(run())
    assert name in partitions(db)
