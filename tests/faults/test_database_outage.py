"""A PostgreSQL crash under load: ``kill -9`` of the postmaster, then a restart.

Measured from outside against ``python -m controlplane serve``: no 500, no request slower
than 3 s, every outage answer a 503 with ``Retry-After``, a 200 within 2 s of PostgreSQL
accepting connections again whatever the outage's length, and every 200 decision audited.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.policy_helpers import ADMIN_ONLY, DENY, active_set
from tests.faults.killable_postgres import KillablePostgres
from tests.faults.outage import Answer, run_load
from tests.served import AUTH, serve_process

OUTAGE_CODES = {"database_unavailable", "audit_unavailable"}


@pytest.fixture(scope="module")
def pg() -> Iterator[KillablePostgres]:
    server = KillablePostgres(Path(tempfile.mkdtemp(prefix="caracal-killable-pg-")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(
    pg: KillablePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """``(base_url, zone_id, database_url)`` of a served process with an active policy."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE caracal")
    url = pg.url.rsplit("/", 1)[0] + "/caracal"
    with serve_process(url, tmp_path_factory.mktemp("serve") / "data") as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
            zone = client.post("/v1/zones", json={"name": "Outage"}).json()
            active_set(client, zone["id"], ADMIN_ONLY)  # type: ignore[arg-type]
            ok = client.post(
                f"/v1/zones/{zone['id']}/decisions", json={"input": {"subject": {"roles": []}}}
            )
            assert ok.status_code == 200, ok.text
        yield base, zone["id"], url


def outage(pg: KillablePostgres, seconds: float, marks: dict[str, float]) -> Any:
    """The fault: a second of normal load, kill -9, ``seconds`` down, restart, 4 s more."""

    async def during() -> None:
        await asyncio.sleep(1.0)
        marks["killed"] = time.monotonic()
        await asyncio.to_thread(pg.kill)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(pg.start)
        marks["back"] = time.monotonic()
        await asyncio.sleep(4.0)

    return during


def audited_request_ids(url: str, request_ids: list[str]) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT request_id FROM audit_events WHERE event_type = 'decision'"
            " AND request_id = ANY(%s)",
            (request_ids,),
        ).fetchall()
    return {r[0] for r in rows}


def figures(answers: list[Answer], marks: dict[str, float]) -> dict[str, Any]:
    """What the outage looked like from outside (printed, and quoted in the docs)."""
    after = [
        a for a in answers if a.status == 200 and a.kind != "ready" and a.started >= marks["back"]
    ]
    ready = [a.seconds for a in answers if a.kind == "ready"]
    return {
        "answers": len(answers),
        "statuses": {f"{s} {e}": n for (s, e), n in _count((a.status, a.error) for a in answers)},
        "slowest": round(max(a.seconds for a in answers), 2),
        "slowest_ready": round(max(ready), 2),
        "first_200_after_restart": round(min(a.finished for a in after) - marks["back"], 2)
        if after
        else None,
    }


def _count(items: Any) -> list[tuple[Any, int]]:
    counts: dict[Any, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return sorted(counts.items(), key=str)


def check(answers: list[Answer], marks: dict[str, float], url: str) -> dict[str, Any]:
    """The outage's promises; returns the figures."""
    summary = figures(answers, marks)
    print(summary)
    assert {a.status for a in answers} <= {200, 503}, summary
    assert any(a.status == 503 for a in answers), "the outage was not seen"
    unavailable = [a for a in answers if a.status == 503 and a.kind != "ready"]
    assert all(a.error in OUTAGE_CODES and a.retry_after for a in unavailable), summary
    assert summary["slowest"] <= 3.0, summary
    assert summary["slowest_ready"] <= 1.0, summary
    assert summary["first_200_after_restart"] is not None, summary
    assert summary["first_200_after_restart"] <= 2.0, summary
    decided = [a.request_id for a in answers if a.kind == "decision" and a.status == 200]
    missing = set(decided) - audited_request_ids(url, decided)
    assert not missing, f"{len(missing)} decisions answered 200 without an audit row"
    return summary


@pytest.mark.parametrize("seconds", [3.0, 15.0], ids=["short", "long"])
def test_kill_9_of_postgres_under_load(
    pg: KillablePostgres, served: tuple[str, str, str], seconds: float
) -> None:
    base, zone_id, url = served
    marks: dict[str, float] = {}
    answers = run_load(base, zone_id, outage(pg, seconds, marks))
    summary = check(answers, marks, url)
    print(f"outage {seconds}s: {summary}")


def test_background_work_resumes_after_an_outage(
    pg: KillablePostgres, served: tuple[str, str, str], tmp_path: Path
) -> None:
    """Another process, whose only way to learn of an activation is its LISTEN connection
    (reconciliation off), follows an activation made after PostgreSQL came back: the relay
    and the listener reconnected by themselves."""
    base, zone_id, url = served
    body = {"input": {"subject": {"roles": ["admin"]}}}
    decide = f"/v1/zones/{zone_id}/decisions"
    with (
        serve_process(url, tmp_path / "b", CARACAL_PDP_RECONCILE_SECONDS="0") as other,
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as a,
        httpx.Client(base_url=other, headers=AUTH, timeout=10) as b,
    ):
        assert b.post(decide, json=body).json()["decision"] == "allow"
        pg.kill()
        time.sleep(5)
        pg.start()
        deadline = time.monotonic() + 15  # eventually: a busy machine may be slow
        while a.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the service did not come back"
            time.sleep(0.1)
        active_set(a, zone_id, DENY)  # type: ignore[arg-type]
        deadline = time.monotonic() + 15  # eventually: a busy machine may be slow
        while (answer := b.post(decide, json=body)).json().get("decision") != "deny":
            assert answer.status_code in {200, 503}, answer.text
            assert time.monotonic() < deadline, "the other process never heard of it"
            time.sleep(0.1)
    with psycopg.connect(url, autocommit=True) as conn:  # the outbox drains (retries included)
        deadline = time.monotonic() + 15
        while _unpublished(conn):
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.1)


def _unpublished(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])
