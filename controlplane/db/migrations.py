"""Schema migrations: the numbered SQL files of ``sql/`` applied in order under a lock.

The runner knows nothing of what the migrations make: a package that must act after every
run (the audit log's partitions for the coming months) adds a step to ``AFTER_MIGRATE``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from controlplane.errors import OperatorError
from controlplane.package_data import SQL_DIR

log = logging.getLogger("controlplane.db")

MIGRATION_LOCK_KEY = 0x43415241  # "CARA"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: Steps run at the end of every migration run, on its connection and under its lock, in
#: the order added (packages add theirs when imported: ``controlplane.audit``).
AFTER_MIGRATE: list[Callable[[psycopg.Connection[Any]], None]] = []


def migration_files(directory: Path = SQL_DIR) -> list[tuple[int, str, Path]]:
    """The numbered migrations in order: ``(version, name, path)``."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    return found


class MigrationChanged(OperatorError):
    """An applied migration's file no longer has the content that was applied."""


def migration_sha256(path: Path) -> str:
    """SHA-256 of a migration file's text (line endings normalised)."""
    return hashlib.sha256(path.read_text().replace("\r\n", "\n").encode()).hexdigest()


def migrate(url: str, directory: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations under an advisory lock; return the names applied.

    Each applied migration's SHA-256 is recorded; a file changed after it was applied stops
    the run (``MigrationChanged``): the database would silently lack what the edit added.
    Rows from before the hashes were recorded take the current file's hash. The
    ``AFTER_MIGRATE`` steps run last, every time.
    """
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text")
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT version, sha256 FROM schema_migrations")
            }
            for version, name, path in migration_files(directory):
                digest = migration_sha256(path)
                if version in done:
                    if done[version] is None:
                        conn.execute(
                            "UPDATE schema_migrations SET sha256 = %s WHERE version = %s",
                            (digest, version),
                        )
                    elif done[version] != digest:
                        raise MigrationChanged(
                            f"migration {path.name} was changed after it was applied to this"
                            " database; restore it and put the change in a new migration"
                        )
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                        (version, name, digest),
                    )
                log.info("migration applied", extra={"migration": name})
                applied.append(name)
            for step in AFTER_MIGRATE:
                step(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied
