"""The group-commit decision audit writer: shared INSERTs, durability, poison rows, failures."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from controlplane.audit.decision_events import AuditWriteError, DecisionAuditWriter, DecisionEvent
from controlplane.audit.writer_lanes import DecisionAuditLanes
from tests.api.policy_helpers import ALLOW, active_set
from tests.redis_fixture import free_port


def event(zone_id: str, **fields: Any) -> DecisionEvent:
    base: dict[str, Any] = {
        "id": uuid7(),
        "zone_id": zone_id,
        "request_id": f"req-{uuid7().hex[:8]}",
        "actor_id": None,
        "decision": "allow",
        "evaluation_status": "complete",
        "metadata": {"input": {"a": 1}},
        "policy_set_id": None,
        "policy_set_version_id": None,
        "manifest_sha": None,
        "determining_policies": [],
        "diagnostics": [],
        "shadow_decision": None,
        "shadow_policy_set_version_id": None,
        "occurred_at": datetime.now(UTC),
    }
    base.update(fields)
    return DecisionEvent(**base)


def write_all(url: str, events: list[DecisionEvent]) -> list[BaseException | None]:
    """Write the events concurrently through one writer; the outcome of each."""

    async def main() -> list[BaseException | None]:
        writer = DecisionAuditWriter(url)
        writer.start()
        try:
            results = await asyncio.gather(
                *(writer.write_all([e]) for e in events), return_exceptions=True
            )
        finally:
            await writer.close()
        return list(results)  # type: ignore[arg-type]

    return asyncio.run(main())


def test_concurrent_events_share_inserts_and_are_all_durable(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    events = [event("z1") for _ in range(50)]
    assert write_all(database_url, events) == [None] * 50
    rows = db.execute(
        "SELECT id, request_id, metadata_json, ingested_at FROM audit_events"
        " WHERE event_type = 'decision'"
    ).fetchall()
    assert {r["id"] for r in rows} == {e.id for e in events}
    # Gathered writes landed in fewer statements than events (group commit).
    assert len({r["ingested_at"] for r in rows}) < 50
    assert rows[0]["metadata_json"] == {"input": {"a": 1}}


def test_a_row_postgres_refuses_fails_alone(database_url: str, db: psycopg.Connection[Any]) -> None:
    good = [event("z1"), event("z1")]
    nul = event("z1", metadata={"input": {"na\x00me": "a\x00b"}})
    assert write_all(database_url, [good[0], nul, good[1]]) == [None, None, None]
    stored = db.execute(
        "SELECT metadata_json FROM audit_events WHERE id = %s", (nul.id,)
    ).fetchone()
    assert stored["metadata_json"] == {"input": {"na\ufffdme": "a\ufffdb"}}
    assert db.execute("SELECT count(*) AS n FROM audit_events").fetchone()["n"] == 3


def test_an_unreachable_database_fails_the_waiting_decisions() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1"
    results = write_all(url, [event("z1"), event("z1")])
    assert all(isinstance(r, AuditWriteError) for r in results)


def test_a_stopped_writer_refuses_writes(database_url: str) -> None:
    async def main() -> None:
        writer = DecisionAuditWriter(database_url)
        with pytest.raises(AuditWriteError):
            await writer.write_all([event("z1")])

    asyncio.run(main())


def test_every_answered_decision_is_in_the_audit_log(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)

    def decide(i: int) -> str:
        response = client.post(
            f"/v1/zones/{z}/decisions",
            json={"input": {"i": i, "note": "nul\u0000inside" if i == 3 else "plain"}},
        )
        assert response.status_code == 200, response.text
        return response.json()["request_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        request_ids = list(pool.map(decide, range(40)))
    stored = {
        r["request_id"]
        for r in db.execute(
            "SELECT request_id FROM audit_events WHERE zone_id = %s AND event_type = 'decision'",
            (z,),
        ).fetchall()
    }
    assert stored == set(request_ids)


def test_lanes_spread_concurrent_writes_and_keep_a_callers_events_together(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    singles = [event("lanes") for _ in range(40)]
    grouped = [event("lanes") for _ in range(5)]

    async def main() -> None:
        lanes = DecisionAuditLanes(database_url, 2)
        lanes.start()
        try:
            await asyncio.gather(*(lanes.write_all([e]) for e in singles), lanes.write_all(grouped))
        finally:
            await lanes.close()

    asyncio.run(main())
    rows = db.execute("SELECT count(*) AS n FROM audit_events WHERE zone_id = 'lanes'").fetchone()
    assert rows["n"] == 45
    # both connections wrote, and the grouped events went in one statement (one transaction)
    transactions = (
        "SELECT count(DISTINCT xmin::text) AS n FROM audit_events WHERE zone_id = 'lanes'"
    )
    assert db.execute(transactions).fetchone()["n"] >= 2
    ids = [e.id for e in grouped]
    one = db.execute(transactions + " AND id = ANY(%s)", (ids,)).fetchone()
    assert one["n"] == 1
