"""What one decision's audit row costs PostgreSQL, and what each part of that cost buys.

Run: ``.venv/bin/python bench/audit_insert.py [--batch 16] [--batches 1500] [--rounds 3]``.
An embedded PostgreSQL with the service's schema; rows like the bench decision's (the
``bench/peer.py`` input in ``metadata_json``, encoded once as the pipeline does), written in
batches of ``--batch`` (the group-commit size the peer bench sees with 32 clients) on one
autocommit connection. For each way of writing, the CPU of that connection's backend
(``/proc``) and of this client per row:

1. the service's statement (``INSERT … SELECT FROM jsonb_to_recordset``), text ``COPY`` and a
   multi-row ``VALUES`` list: the same table, three encodings;
2. the service's statement into a copy of the table with its primary key only: what the
   four secondary indexes (those of the audit list queries) cost per row (the immutability
   trigger fires on UPDATE and DELETE only);
3. the service's statement with ``synchronous_commit = off``: what the durable commit costs
   (not an option: an answered decision must have its committed row).

The variants alternate round by round (medians), so the machine's drift touches them alike.

Not a timed test: it prints figures to compare (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import psycopg
from harness import E2E_INPUT, cpu_seconds, embedded_postgres

from controlplane.audit.decision_events import _INSERT, DecisionEvent, encode_batch
from controlplane.db.migrations import migrate
from controlplane.ids import new_id

_COLUMNS = (
    "id, zone_id, event_type, request_id, actor_id, decision, evaluation_status,"
    " metadata_json, policy_set_id, policy_set_version_id, manifest_sha,"
    " determining_policies_json, diagnostics_json, shadow_decision,"
    " shadow_policy_set_version_id, occurred_at"
)
_METADATA = msgspec.json.encode(
    {
        "actor": "bench-token",
        "reasons": ["roles_allow_requested_scopes"],
        "granted_scopes": ["orders:read", "orders:write"],
        "obligations": {},
        "step_up": None,
        "input": E2E_INPUT,
    }
)

Write = Callable[[psycopg.Connection[Any], list[DecisionEvent]], None]


def event() -> DecisionEvent:
    """One decision's row, as the pipeline builds it for the bench input."""
    return DecisionEvent(
        id=new_id(),
        zone_id="01a23d23-20a6-7aa4-9310-93e515cebe0f",
        request_id=new_id(),
        actor_id="bench-token",
        decision="allow",
        evaluation_status="complete",
        metadata=msgspec.Raw(_METADATA),
        policy_set_id=new_id(),
        policy_set_version_id=new_id(),
        manifest_sha="0" * 64,
        determining_policies=[{"policy_id": new_id(), "policy_version_id": new_id()}],
        diagnostics=[],
        shadow_decision=None,
        shadow_policy_set_version_id=None,
        occurred_at=datetime.now(UTC),
    )


def _values(e: DecisionEvent) -> tuple[Any, ...]:
    metadata = (
        e.metadata if isinstance(e.metadata, msgspec.Raw) else msgspec.json.encode(e.metadata)
    )
    return (
        e.id,
        e.zone_id,
        e.event_type,
        e.request_id,
        e.actor_id,
        e.decision,
        e.evaluation_status,
        bytes(metadata).decode(),
        e.policy_set_id,
        e.policy_set_version_id,
        e.manifest_sha,
        msgspec.json.encode(e.determining_policies).decode(),
        msgspec.json.encode(e.diagnostics).decode(),
        e.shadow_decision,
        e.shadow_policy_set_version_id,
        e.occurred_at,
    )


def as_the_service(table: str = "audit_events") -> Write:
    """The writer's statement (the batch as one JSON array), into ``table``."""
    statement = _INSERT.replace("INSERT INTO audit_events", f"INSERT INTO {table}", 1)

    def write(conn: psycopg.Connection[Any], batch: list[DecisionEvent]) -> None:
        conn.execute(statement, (encode_batch(batch),))

    return write


def by_copy(conn: psycopg.Connection[Any], batch: list[DecisionEvent]) -> None:
    """Text ``COPY``, one ``write_row`` per event."""
    with conn.cursor().copy(f"COPY audit_events ({_COLUMNS}) FROM STDIN") as copy:
        for e in batch:
            copy.write_row(_values(e))


def by_values(conn: psycopg.Connection[Any], batch: list[DecisionEvent]) -> None:
    """One ``INSERT … VALUES (…), (…)`` with a parameter per column."""
    row = "(" + ",".join(["%s"] * 7 + ["%s::jsonb"] + ["%s"] * 3 + ["%s::jsonb"] * 2)
    row += ",%s,%s,%s)"
    params = [value for e in batch for value in _values(e)]
    rows = ",".join([row] * len(batch))
    conn.execute(f"INSERT INTO audit_events ({_COLUMNS}) VALUES {rows}", params)


def key_only_table(conn: psycopg.Connection[Any]) -> str:
    """A copy of ``audit_events`` (partitioned the same way) with its primary key only."""
    conn.execute(
        "CREATE TABLE audit_key_only (LIKE audit_events INCLUDING DEFAULTS INCLUDING"
        " CONSTRAINTS, PRIMARY KEY (id, occurred_at)) PARTITION BY RANGE (occurred_at)"
    )
    conn.execute(
        "CREATE TABLE audit_key_only_now PARTITION OF audit_key_only"
        " FOR VALUES FROM (now() - interval '1 day') TO (now() + interval '1 day')"
    )
    return "audit_key_only"


def measure(
    conn: psycopg.Connection[Any], write: Write, *, batch: int, batches: int
) -> tuple[float, float]:
    """``(backend CPU µs, client CPU µs)`` per row over ``batches`` writes of ``batch`` rows."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert backend is not None
    pid = backend[0]
    groups = [[event() for _ in range(batch)] for _ in range(batches)]
    before, client = cpu_seconds(pid), time.process_time()
    for group in groups:
        write(conn, group)
    rows = batch * batches
    return (
        1e6 * (cpu_seconds(pid) - before) / rows,
        1e6 * (time.process_time() - client) / rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="rows per statement")
    parser.add_argument("--batches", type=int, default=1500, help="statements per figure")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    args = parser.parse_args()
    sizes = {"batch": args.batch, "batches": args.batches}

    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_postgres(Path(tmp) / "pg") as (url, _),
        psycopg.connect(url, autocommit=True) as conn,
        psycopg.connect(url, autocommit=True) as lazy,
    ):
        migrate(url)
        conn.execute("SELECT caracal_ensure_audit_partitions(2)")
        lazy.execute("SET synchronous_commit = off")
        key_only = key_only_table(conn)
        variants: list[tuple[str, psycopg.Connection[Any], Write]] = [
            ("INSERT … jsonb_to_recordset (the service)", conn, as_the_service()),
            ("COPY (text)", conn, by_copy),
            ("INSERT … VALUES", conn, by_values),
            ("the service's, primary key only", conn, as_the_service(key_only)),
            ("the service's, synchronous_commit = off", lazy, as_the_service()),
        ]
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in variants}
        measure(conn, as_the_service(), batch=args.batch, batches=200)  # warm-up
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for name, connection, write in order:
                figures[name].append(measure(connection, write, **sizes))
    rows = args.batch * args.batches
    print(f"audit rows in batches of {args.batch}; medians of {args.rounds} alternated rounds")
    print(f"of {rows:,} rows each; CPU µs per row")
    print(f"  {'':44s} {'PostgreSQL':>10s} {'client':>8s}")
    for name, runs in figures.items():
        backend = statistics.median(b for b, _ in runs)
        client = statistics.median(c for _, c in runs)
        print(f"  {name:44s} {backend:10.1f} {client:8.1f}")


if __name__ == "__main__":
    main()
