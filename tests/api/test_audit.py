"""Audit queries: filters, time bounds, redaction, keyset pagination, by-request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from tests.api.runtime_rows import insert_event, insert_session, now

ROW_KEYS = {
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "evaluation_status",
    "metadata_json",
    "occurred_at",
    "ingested_at",
}
DETAIL_KEYS = ROW_KEYS | {
    "actor_id",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "determining_policies_json",
    "diagnostics_json",
    "shadow_decision",
    "shadow_policy_set_version_id",
}


def url(zone_id: str, query: str = "") -> str:
    return f"/v1/zones/{zone_id}/audit" + (f"?{query}" if query else "")


def ids(client: TestClient, zone_id: str, query: str = "") -> list[str]:
    response = client.get(url(zone_id, query))
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["rows"]]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def walk(client: TestClient, zone_id: str, query: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        body = client.get(url(zone_id, query + (f"&cursor={cursor}" if cursor else ""))).json()
        seen += [row["id"] for row in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_admin_changes_are_listed_with_request_id_and_actor(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    response = client.patch(
        f"/v1/zones/{z}", json={"name": "Renamed"}, headers={"X-Request-Id": "req-abc"}
    )
    assert response.status_code == 200
    body = client.get(url(z)).json()
    assert body["next_cursor"] is None
    rows = body["rows"]
    assert [r["event_type"] for r in rows] == ["zone.updated", "zone.created"]
    updated = rows[0]
    assert set(updated) == ROW_KEYS
    assert updated["zone_id"] == z
    assert updated["request_id"] == "req-abc"
    assert updated["decision"] is None
    assert updated["metadata_json"]["changes"] == {"name": "Renamed"}
    assert updated["metadata_json"]["actor"]
    assert updated["occurred_at"].endswith("Z") and updated["ingested_at"].endswith("Z")


def test_filters_by_request_decision_and_event_type(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    allow = insert_event(db, z, decision="allow", request_id="r1")
    deny = insert_event(db, z, decision="deny", request_id="r2")
    partial = insert_event(db, z, decision="partial", request_id="r2")
    grant = insert_event(db, z, event_type="grant.revoked", request_id="r3")
    assert ids(client, z, "decision=allow") == [allow]
    assert ids(client, z, "decision=deny") == [deny]
    assert ids(client, z, "decision=partial") == [partial]
    assert set(ids(client, z, "request_id=r2")) == {deny, partial}
    assert ids(client, z, "event_type=grant.revoked") == [grant]
    assert set(ids(client, z, "event_type=decision")) == {allow, deny, partial}
    assert ids(client, z, "event_type=decision&request_id=r2&decision=deny") == [deny]
    assert ids(client, z, "request_id=none") == []


def test_since_is_inclusive_and_until_exclusive(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    base = (now() - timedelta(hours=1)).replace(microsecond=0)
    at = [base + timedelta(minutes=i) for i in range(4)]
    events = [insert_event(db, z, event_type="t", occurred_at=t) for t in at]
    assert ids(client, z, f"event_type=t&since={iso(at[1])}") == events[:0:-1]
    assert ids(client, z, f"event_type=t&until={iso(at[2])}") == [events[1], events[0]]
    assert ids(client, z, f"event_type=t&since={iso(at[1])}&until={iso(at[3])}") == [
        events[2],
        events[1],
    ]
    assert ids(client, z, f"event_type=t&since={iso(at[2])}&until={iso(at[2])}") == []
    # offsets and offset-less values (UTC) are accepted
    plus_two = at[1].astimezone(UTC).replace(tzinfo=None).isoformat()
    assert ids(client, z, f"event_type=t&until={plus_two}") == [events[0]]
    offset = at[3].astimezone(UTC) + timedelta(hours=2)
    text = offset.replace(tzinfo=None).isoformat() + "%2B02:00"
    assert ids(client, z, f"event_type=t&since={text}") == [events[3]]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("since=yesterday", ["since"]),
        ("until=2026-13-01", ["until"]),
        ("decision=maybe", ["decision"]),
        ("limit=0", ["limit"]),
        ("limit=1001", ["limit"]),
        ("limit=x", ["limit"]),
        ("limit=1e2", ["limit"]),
        ("request_id=r%00", ["request_id"]),
        ("event_type=%00", ["event_type"]),
    ],
)
def test_bad_query_values_are_invalid_query(
    client: TestClient, zone: dict[str, Any], query: str, path: list[str]
) -> None:
    response = client.get(url(zone["id"], query))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_query"
    assert body["issues"][0]["path"] == path
    assert body["issues"][0]["message"]


def test_metadata_is_redacted_at_any_depth_when_read(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    metadata = {
        "client_secret": "s3cr3t",
        "token_url": "https://idp/token",
        "nested": {"Password": "pw", "items": [{"api-key": "k", "name": "n"}], "ok": 1},
        "list": [[{"private_key": {"d": "x"}}]],
    }
    event = insert_event(db, z, event_type="legacy.write", metadata=metadata, request_id="rq")
    rows = client.get(url(z, "event_type=legacy.write")).json()["rows"]
    expected = {
        "client_secret": "[REDACTED]",
        "token_url": "https://idp/token",
        "nested": {
            "Password": "[REDACTED]",
            "items": [{"api-key": "[REDACTED]", "name": "n"}],
            "ok": 1,
        },
        "list": [[{"private_key": "[REDACTED]"}]],
    }
    assert rows[0]["id"] == event
    assert rows[0]["metadata_json"] == expected
    detail = client.get(f"/v1/zones/{z}/audit/by-request/rq").json()
    assert detail[0]["metadata_json"] == expected
    assert "s3cr3t" not in client.get(url(z)).text


def test_limit_default_and_pages_across_monthly_partitions(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    month = now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # around the boundary between last month and this month, plus the default partition
    # (months not created by the migration), with equal timestamps in places
    times = [month + timedelta(seconds=s) for s in range(-60, 60, 2)]
    times += [month - timedelta(days=200)] * 5 + [month + timedelta(days=200)] * 5
    times += [now() - timedelta(minutes=1)] * 40
    for t in times:
        insert_event(db, z, event_type="bulk", occurred_at=t)
    insert_event(db, "other-zone", event_type="bulk")
    expected = [
        str(r["id"])
        for r in db.execute(
            "SELECT id FROM audit_events WHERE zone_id = %s AND event_type = 'bulk'"
            " ORDER BY occurred_at DESC, id DESC",
            (z,),
        ).fetchall()
    ]
    assert len(expected) == len(times) == 110
    body = client.get(url(z, "event_type=bulk")).json()
    assert len(body["rows"]) == 100 and body["next_cursor"]
    assert walk(client, z, "event_type=bulk&limit=9") == expected
    assert walk(client, z, "event_type=bulk&limit=1000") == expected
    since = month - timedelta(seconds=10)
    recent = [
        str(r["id"])
        for r in db.execute(
            "SELECT id FROM audit_events WHERE zone_id = %s AND event_type = 'bulk'"
            " AND occurred_at >= %s ORDER BY occurred_at DESC, id DESC",
            (z, since),
        ).fetchall()
    ]
    assert 0 < len(recent) < len(expected)
    assert walk(client, z, f"event_type=bulk&limit=4&since={iso(since)}") == recent


def test_paging_is_stable_while_events_are_written(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    old = [
        insert_event(db, z, occurred_at=now() - timedelta(minutes=10, seconds=i)) for i in range(30)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        body = client.get(
            url(z, "event_type=decision&limit=4" + (f"&cursor={cursor}" if cursor else ""))
        ).json()
        seen += [row["id"] for row in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        insert_event(db, z)  # newer than everything: must not show up
        insert_event(db, z, occurred_at=now() - timedelta(days=1))  # older: shows up once
    assert len(seen) == len(set(seen))
    assert [e for e in seen if e in old] == old
    assert len(seen) > len(old)


def test_foreign_and_tampered_cursors_are_invalid_cursor(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    for z in (zone["id"], other["id"]):
        for _ in range(3):
            insert_event(db, z)
            insert_session(db, z, str(uuid7()))
    foreign = client.get(url(other["id"], "limit=1")).json()["next_cursor"]
    sessions_cursor = client.get(f"/v1/zones/{zone['id']}/sessions?limit=1").json()["next_cursor"]
    own = client.get(url(zone["id"], "limit=1")).json()["next_cursor"]
    for bad in [foreign, sessions_cursor, own[:-1] + ("A" if own[-1] != "A" else "B"), "xyz"]:
        response = client.get(url(zone["id"], f"cursor={bad}"))
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_cursor"


def test_by_request_returns_full_diagnostics_oldest_first(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    pset, version, shadow = uuid7(), uuid7(), uuid7()
    first = insert_event(
        db,
        z,
        request_id="req-1",
        decision="deny",
        occurred_at=now() - timedelta(seconds=5),
        evaluation_status="complete",
        policy_set_id=pset,
        policy_set_version_id=version,
        manifest_sha="ab" * 32,
        determining_policies_json=[{"policy_id": "p", "policy_version_id": "v"}],
        diagnostics_json=[{"policy_id": "p", "policy_version_id": "v", "error": "undefined"}],
        shadow_decision="allow",
        shadow_policy_set_version_id=shadow,
        actor_id="tok",
    )
    second = insert_event(db, z, event_type="grant.revoked", request_id="req-1")
    insert_event(db, "some-other-zone", request_id="req-1")
    response = client.get(f"/v1/zones/{z}/audit/by-request/req-1")
    assert response.status_code == 200
    rows = response.json()
    assert [r["id"] for r in rows] == [first, second]
    assert all(set(r) == DETAIL_KEYS for r in rows)
    detail = rows[0]
    assert detail["policy_set_id"] == str(pset)
    assert detail["policy_set_version_id"] == str(version)
    assert detail["manifest_sha"] == "ab" * 32
    assert detail["determining_policies_json"] == [{"policy_id": "p", "policy_version_id": "v"}]
    assert detail["diagnostics_json"][0]["error"] == "undefined"
    assert detail["shadow_decision"] == "allow"
    assert detail["shadow_policy_set_version_id"] == str(shadow)
    assert detail["evaluation_status"] == "complete"
    admin = rows[1]
    assert admin["determining_policies_json"] == [] and admin["diagnostics_json"] == []
    assert admin["policy_set_id"] is None and admin["decision"] is None
    UUID(admin["id"])


def test_by_request_unknown_request_is_request_not_found(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    insert_event(db, other["id"], request_id="theirs")
    for request_id in ["nope", "theirs"]:
        response = client.get(f"/v1/zones/{zone['id']}/audit/by-request/{request_id}")
        assert response.status_code == 404
        assert response.json() == {"error": "request_not_found"}


def test_other_zones_events_are_not_listed(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    insert_event(db, other["id"], event_type="x")
    assert ids(client, zone["id"], "event_type=x") == []
    assert ids(client, other["id"], "event_type=x") != []


def test_unknown_zone_is_zone_not_found(client: TestClient) -> None:
    for path in [url("no-such-zone"), "/v1/zones/no-such-zone/audit/by-request/r"]:
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "zone_not_found"}
