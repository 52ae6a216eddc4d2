"""Step-up challenges: list and satisfy (challenges seeded; decisions: test_decision_sessions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from tests.api.runtime_rows import insert_challenge, insert_session, now

KEYS = {
    "id",
    "zone_id",
    "session_id",
    "challenge_type",
    "metadata_json",
    "created_at",
    "expires_at",
    "satisfied_at",
}
NOT_FOUND = {"error": "challenge_not_found_or_expired"}


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/step-up-challenges"


def test_list_is_a_bare_array_newest_first(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    assert client.get(base(z)).json() == []
    insert_session(db, z, "session-id")
    insert_session(db, z, "other-session")
    older = insert_challenge(
        db, z, "session-id", created_at=now() - timedelta(seconds=5), metadata={"why": "x"}
    )
    newer = insert_challenge(db, z, "other-session", challenge_type="approval")
    rows = client.get(base(z)).json()
    assert [r["id"] for r in rows] == [newer, older]
    assert all(set(r) == KEYS for r in rows)
    assert rows[1]["session_id"] == "session-id"
    assert rows[1]["challenge_type"] == "mfa"
    assert rows[1]["metadata_json"] == {"why": "x"}
    assert rows[1]["satisfied_at"] is None
    assert rows[1]["zone_id"] == z
    only = client.get(base(z) + "?session_id=session-id").json()
    assert [r["id"] for r in only] == [older]
    assert len(client.get(base(z) + "?limit=1").json()) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x"])
def test_bad_limit_is_invalid_query(client: TestClient, zone: dict[str, Any], query: str) -> None:
    response = client.get(base(zone["id"]) + "?" + query)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_query"
    assert response.json()["issues"][0]["path"] == ["limit"]


def test_satisfy_is_idempotent_and_audited_once(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    insert_session(db, z, "session-id")
    challenge = insert_challenge(db, z, "session-id")
    first = client.post(f"{base(z)}/{challenge}/satisfy")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"id", "satisfied_at"}
    assert body["id"] == challenge and body["satisfied_at"].endswith("Z")
    again = client.post(f"{base(z)}/{challenge}/satisfy", json={})
    assert again.status_code == 200
    assert again.json() == body
    listed = client.get(base(z)).json()[0]
    assert listed["satisfied_at"] == body["satisfied_at"]
    events = client.get(f"/v1/zones/{z}/audit?event_type=step_up_challenge.satisfied").json()
    assert len(events["rows"]) == 1
    assert events["rows"][0]["metadata_json"]["challenge_id"] == challenge


def test_unknown_expired_or_foreign_challenges_are_not_found(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    z = zone["id"]
    insert_session(db, z, "s")
    insert_session(db, other["id"], "s")
    expired = insert_challenge(db, z, "s", expires_at=now() - timedelta(seconds=1))
    satisfied_then_expired = insert_challenge(db, z, "s", expires_at=now() + timedelta(hours=1))
    assert client.post(f"{base(z)}/{satisfied_then_expired}/satisfy").status_code == 200
    db.execute(
        "UPDATE step_up_challenges SET expires_at = now() - interval '1 s' WHERE id = %s",
        (satisfied_then_expired,),
    )
    theirs = insert_challenge(db, other["id"], "s")
    for challenge_id in [expired, satisfied_then_expired, theirs, str(uuid7()), "not-a-uuid"]:
        response = client.post(f"{base(z)}/{challenge_id}/satisfy")
        assert response.status_code == 404, challenge_id
        assert response.json() == NOT_FOUND
    row = db.execute(
        "SELECT satisfied_at FROM step_up_challenges WHERE id = %s", (expired,)
    ).fetchone()
    assert row is not None and row["satisfied_at"] is None


def test_unknown_zone_is_zone_not_found(client: TestClient) -> None:
    assert client.get(base("nowhere")).json() == {"error": "zone_not_found"}
    response = client.post(f"{base('nowhere')}/{uuid7()}/satisfy")
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}
