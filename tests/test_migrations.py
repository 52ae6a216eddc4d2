"""Migrations: applied once, recorded, safe when two processes start at once."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from uuid6 import uuid7

from controlplane.db.migrations import MigrationChanged, migrate, migration_files
from tests.conftest import _with_database


@pytest.fixture
def empty_database(pg_server_url: str) -> Iterator[str]:
    name = f"caracal_empty_{uuid7().hex}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrations_are_recorded_and_applied_once(empty_database: str) -> None:
    names = [name for _, name, _ in migration_files()]
    assert names and names[0] == "0001_init"
    assert migrate(empty_database) == names
    assert migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert [name for _, name in rows] == names


def test_two_concurrent_migrations_do_not_race(empty_database: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_database))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    applied = sorted(name for batch in results for name in batch)
    assert applied == sorted(name for _, name, _ in migration_files())


def test_audit_partitions_exist_for_the_coming_months(empty_database: str) -> None:
    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'audit_events'::regclass"
            )
        ]
    monthly = [n for n in names if n.startswith("audit_events_2")]
    assert len(monthly) >= 4
    assert "audit_events_default" in names


def test_audit_events_are_immutable(empty_database: str) -> None:
    migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_events (id, zone_id, event_type) VALUES (%s, 'z', 'x')", (uuid7(),)
        )
        with pytest.raises(psycopg.Error, match="immutable"):
            conn.execute("UPDATE audit_events SET event_type = 'y'")


def test_a_migration_changed_after_it_was_applied_stops_the_run(
    empty_database: str, tmp_path: Path
) -> None:
    for _, _, path in migration_files():
        shutil.copy(path, tmp_path / path.name)
    assert migrate(empty_database, tmp_path)
    # rows from before hashes were recorded take the current file's hash
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET sha256 = NULL WHERE version = 2")
    assert migrate(empty_database, tmp_path) == []
    edited = tmp_path / "0003_policies.sql"
    edited.write_text(edited.read_text() + "\n-- a change after the fact\n")
    with pytest.raises(MigrationChanged, match=r"0003_policies\.sql was changed"):
        migrate(empty_database, tmp_path)
    # line endings alone are no change
    edited.write_text(edited.read_text().replace("\n-- a change after the fact\n", ""))
    crlf = tmp_path / "0004_grants_sessions.sql"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(empty_database, tmp_path) == []
