"""Sessions and step-up through the real decision API (``POST …/decisions``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from controlplane.decisions.sessions import check_session, session_claim
from tests.api.policy_helpers import ALLOW, active_set

STEP_UP = """package caracal.authz

import rego.v1

default result := {"decision": "partial", "reasons": ["mfa_required"],
    "step_up": {"type": "mfa", "ttl": 300}}

result := {"allow": true, "reasons": ["stepped_up"]} if input.session.step_up_satisfied == true
"""
ECHO_STEP_UP = """package caracal.authz

import rego.v1

result := {"allow": true, "reasons": [sprintf("satisfied=%v", [object.get(input, ["session",
    "step_up_satisfied"], "absent")])]}
"""


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_hours(hours: float) -> str:
    return iso(datetime.now(UTC) + timedelta(hours=hours))


def session(session_id: str = "session-id", **fields: Any) -> dict[str, Any]:
    return {"id": session_id, "subject_id": "alice", "expires_at": in_hours(1), **fields}


def decide(client: TestClient, zone_id: str, input: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v1/zones/{zone_id}/decisions", json={"input": input})
    assert response.status_code == 200, response.text
    return response.json()


def get_session(client: TestClient, zone_id: str, session_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/zones/{zone_id}/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return response.json()


def challenges(client: TestClient, zone_id: str) -> list[dict[str, Any]]:
    return client.get(f"/v1/zones/{zone_id}/step-up-challenges").json()


@pytest.fixture
def allow_zone(client: TestClient, zone: dict[str, Any]) -> str:
    active_set(client, zone["id"], ALLOW)
    return zone["id"]


def test_first_decision_records_the_session(client: TestClient, allow_zone: str) -> None:
    z = allow_zone
    expires = in_hours(2)
    authenticated = iso(datetime.now(UTC) - timedelta(minutes=5))
    assert decide(client, z, {"session": session(expires_at=expires)})["decision"] == "allow"
    stored = get_session(client, z, "session-id")
    assert stored["session_type"] == "user"
    assert stored["subject_id"] == "alice"
    assert stored["parent_id"] is None
    assert stored["status"] == "active"
    assert datetime.fromisoformat(stored["expires_at"]) == datetime.fromisoformat(expires)

    child = session("child:1", parent_id="session-id", authenticated_at=authenticated)
    decide(client, z, {"session": child})
    assert get_session(client, z, "child:1")["session_type"] == "delegated"
    stored_child = get_session(client, z, "child:1")
    assert datetime.fromisoformat(stored_child["authenticated_at"]) == datetime.fromisoformat(
        authenticated
    )
    decide(client, z, {"session": session("svc", type="service", parent_id="session-id")})
    assert get_session(client, z, "svc")["session_type"] == "service"

    # later decisions use the stored row: a different subject or expiry is ignored
    decide(client, z, {"session": session(subject_id="mallory", expires_at=in_hours(100))})
    again = get_session(client, z, "session-id")
    assert again == stored
    # a known session needs only its id
    assert decide(client, z, {"session": {"id": "session-id"}})["decision"] == "allow"


def test_no_session_in_the_input_records_nothing(client: TestClient, allow_zone: str) -> None:
    decide(client, allow_zone, {"subject": {"id": "alice"}})
    decide(client, allow_zone, {"session": "not-an-object"})
    decide(client, allow_zone, {"session": {"subject_id": "alice"}})
    rows = client.get(f"/v1/zones/{allow_zone}/sessions").json()["rows"]
    assert rows == []


def test_revoked_session_is_denied_without_evaluating_policies(
    client: TestClient, allow_zone: str
) -> None:
    z = allow_zone
    assert decide(client, z, {"session": session()})["decision"] == "allow"
    app = client.post(
        f"/v1/zones/{z}/applications", json={"name": "a", "registration_method": "managed"}
    ).json()
    resource = client.post(
        f"/v1/zones/{z}/resources", json={"identifier": "resource://x", "scopes": ["read"]}
    ).json()
    grant = client.post(
        f"/v1/zones/{z}/grants",
        json={
            "application_id": app["id"],
            "resource_id": resource["id"],
            "user_id": "alice",
            "scopes": ["read"],
        },
    ).json()
    assert client.delete(f"/v1/zones/{z}/grants/{grant['id']}").status_code == 204
    assert get_session(client, z, "session-id")["status"] == "revoked"

    response = client.post(
        f"/v1/zones/{z}/decisions",
        json={"input": {"session": {"id": "session-id"}}},
        headers={"X-Request-Id": "after-revoke"},
    )
    body = response.json()
    assert body["decision"] == "deny"
    assert body["reasons"] == ["session_revoked"]
    assert body["determining_policies"] == []  # the allow-all policy did not run
    assert body["granted_scopes"] == [] and body["step_up"] is None
    (event,) = client.get(f"/v1/zones/{z}/audit/by-request/after-revoke").json()
    assert event["event_type"] == "decision" and event["decision"] == "deny"


def test_expired_session_is_denied(client: TestClient, allow_zone: str) -> None:
    z = allow_zone
    expired = session("old", expires_at=in_hours(-1))
    body = decide(client, z, {"session": expired})
    assert body["decision"] == "deny"
    assert body["reasons"] == ["session_expired"]
    assert get_session(client, z, "old")["status"] == "expired"  # recorded all the same
    assert decide(client, z, {"session": session("fresh")})["decision"] == "allow"


def delegated(session_id: str, parent_id: str, **fields: Any) -> dict[str, Any]:
    return session(session_id, subject_id="agent-7", parent_id=parent_id, **fields)


def test_delegated_session_dies_with_an_ancestor(
    client: TestClient, allow_zone: str, db: psycopg.Connection[Any]
) -> None:
    z = allow_zone
    assert decide(client, z, {"session": session("user")})["decision"] == "allow"
    assert decide(client, z, {"session": delegated("agent", "user")})["decision"] == "allow"
    assert decide(client, z, {"session": delegated("sub-agent", "agent")})["decision"] == "allow"
    assert get_session(client, z, "sub-agent")["session_type"] == "delegated"

    db.execute("UPDATE sessions SET expires_at = now() - interval '1 s' WHERE id = 'user'")
    for child in ("agent", "sub-agent"):
        body = decide(client, z, {"session": {"id": child}})
        assert (body["decision"], body["reasons"]) == ("deny", ["session_expired"])
        assert body["determining_policies"] == []  # no policy ran

    db.execute("UPDATE sessions SET revoked_at = now() WHERE id = 'user'")  # revoked wins
    body = decide(client, z, {"session": {"id": "sub-agent"}})
    assert (body["decision"], body["reasons"]) == ("deny", ["session_revoked"])

    # a session first seen with a dead parent is recorded, and denied from the start
    body = decide(client, z, {"session": delegated("late-agent", "user")})
    assert (body["decision"], body["reasons"]) == ("deny", ["session_revoked"])
    assert get_session(client, z, "late-agent")["parent_id"] == "user"

    # the parent's state never leaks sideways: an unrelated session is unaffected
    assert decide(client, z, {"session": session("other")})["decision"] == "allow"


def test_unrecorded_or_cyclic_parents_do_not_block(
    client: TestClient, allow_zone: str, db: psycopg.Connection[Any]
) -> None:
    z = allow_zone
    # a parent this control plane never saw is not checked
    assert decide(client, z, {"session": delegated("agent", "unknown")})["decision"] == "allow"
    # a cycle of parent ids (possible only through recorded claims) ends at the depth limit
    assert decide(client, z, {"session": delegated("a", "b")})["decision"] == "allow"
    assert decide(client, z, {"session": delegated("b", "a")})["decision"] == "allow"
    assert decide(client, z, {"session": {"id": "a"}})["decision"] == "allow"
    db.execute("UPDATE sessions SET revoked_at = now() WHERE id = 'b'")
    body = decide(client, z, {"session": {"id": "a"}})
    assert (body["decision"], body["reasons"]) == ("deny", ["session_revoked"])


@pytest.mark.parametrize(
    ("session_value", "path"),
    [
        ({"id": 7}, ["input", "session", "id"]),
        ({"id": ""}, ["input", "session", "id"]),
        ({"id": "x" * 513, "subject_id": "a"}, ["input", "session", "id"]),
        ({"id": "s", "subject_id": 1, "expires_at": "2030-01-01T00:00:00Z"},
         ["input", "session", "subject_id"]),
        ({"id": "s", "subject_id": "a", "expires_at": "tomorrow"},
         ["input", "session", "expires_at"]),
        ({"id": "s", "subject_id": "a", "expires_at": "2030-01-01T00:00:00"},
         ["input", "session", "expires_at"]),
        ({"id": "s", "subject_id": "a", "expires_at": "2030-01-01T00:00:00Z", "type": ""},
         ["input", "session", "type"]),
        ({"id": "s", "subject_id": "a"}, ["input", "session"]),
        ({"id": "s", "expires_at": "2030-01-01T00:00:00Z"}, ["input", "session"]),
    ],
)  # fmt: skip
def test_malformed_session_is_invalid_body(
    client: TestClient, allow_zone: str, session_value: dict[str, Any], path: list[str]
) -> None:
    response = client.post(
        f"/v1/zones/{allow_zone}/decisions", json={"input": {"session": session_value}}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


def test_step_up_satisfied_belongs_to_the_server(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, ECHO_STEP_UP)
    forged = {"id": "s1", "subject_id": "a", "expires_at": in_hours(1), "step_up_satisfied": True}
    assert decide(client, z, {"session": forged})["reasons"] == ["satisfied=false"]
    no_id = {"step_up_satisfied": True}
    assert decide(client, z, {"session": no_id})["reasons"] == ["satisfied=false"]
    assert decide(client, z, {})["reasons"] == ["satisfied=absent"]


def test_step_up_round_trip(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, STEP_UP)
    response = client.post(
        f"/v1/zones/{z}/decisions",
        json={"input": {"session": session()}},
        headers={"X-Request-Id": "needs-mfa"},
    )
    first = response.json()
    assert first["decision"] == "partial"
    assert first["reasons"] == ["mfa_required"]
    assert first["step_up"]["type"] == "mfa"
    challenge_id = first["step_up"]["id"]

    (challenge,) = challenges(client, z)
    assert challenge["id"] == challenge_id
    assert challenge["session_id"] == "session-id"
    assert challenge["challenge_type"] == "mfa"
    assert challenge["satisfied_at"] is None
    assert challenge["metadata_json"]["request_id"] == "needs-mfa"
    lifetime = datetime.fromisoformat(challenge["expires_at"]) - datetime.fromisoformat(
        challenge["created_at"]
    )
    assert lifetime == timedelta(seconds=300)
    (event,) = client.get(f"/v1/zones/{z}/audit/by-request/needs-mfa").json()
    assert event["decision"] == "partial"

    # asked again before it is satisfied: the pending challenge is reused
    second = decide(client, z, {"session": {"id": "session-id"}})
    assert second["decision"] == "partial"
    assert second["step_up"] == first["step_up"]
    assert len(challenges(client, z)) == 1

    satisfied = client.post(f"/v1/zones/{z}/step-up-challenges/{challenge_id}/satisfy")
    assert satisfied.status_code == 200

    third = decide(client, z, {"session": {"id": "session-id"}})
    assert third["decision"] == "allow"
    assert third["reasons"] == ["stepped_up"]
    assert third["step_up"] is None
    # another session of the same user is not stepped up by it
    other = decide(client, z, {"session": session("other-session")})
    assert other["decision"] == "partial" and other["step_up"]["id"] != challenge_id


def test_an_expired_satisfied_challenge_no_longer_counts(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, STEP_UP)
    first = decide(client, z, {"session": session()})
    challenge_id = first["step_up"]["id"]
    assert (
        client.post(f"/v1/zones/{z}/step-up-challenges/{challenge_id}/satisfy").status_code == 200
    )
    assert decide(client, z, {"session": {"id": "session-id"}})["decision"] == "allow"
    db.execute(
        "UPDATE step_up_challenges SET expires_at = now() - interval '1 s' WHERE id = %s",
        (challenge_id,),
    )
    again = decide(client, z, {"session": {"id": "session-id"}})
    assert again["decision"] == "partial"
    assert again["step_up"]["id"] != challenge_id


def test_a_step_up_type_the_service_cannot_store_fails_closed(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    long_type = "t" * 65
    active_set(client, z, STEP_UP.replace('"type": "mfa"', f'"type": "{long_type}"'))
    body = decide(client, z, {"session": session()})
    assert body["decision"] == "deny" and body["step_up"] is None
    assert challenges(client, z) == []


def test_longest_session_and_subject_ids_are_recorded(
    client: TestClient, allow_zone: str, db: psycopg.Connection[Any]
) -> None:
    wide = "\U0001f600" * 512  # 512 characters of 4 bytes each
    body = decide(client, allow_zone, {"session": session(wide, subject_id=wide)})
    assert body["decision"] == "allow"
    rows = client.get(f"/v1/zones/{allow_zone}/sessions").json()["rows"]
    assert [(r["id"], r["subject_id"]) for r in rows] == [(wide, wide)]
    # a page boundary on that session: its cursor is long, and still accepted
    decide(client, allow_zone, {"session": session("older")})
    decide(client, allow_zone, {"session": session("newer")})
    db.execute("UPDATE sessions SET created_at = created_at - interval '1 h' WHERE id = 'older'")
    url = f"/v1/zones/{allow_zone}/sessions?limit=1"
    seen = []
    cursor = None
    while True:
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.text
        seen += [r["id"] for r in page.json()["rows"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(["older", wide, "newer"])


def test_step_up_without_a_session_denies(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, STEP_UP)
    body = decide(client, z, {"subject": {"id": "alice"}})
    assert body["decision"] == "deny"
    assert body["reasons"] == ["mfa_required", "step_up_session_required"]
    assert body["step_up"] is None and body["granted_scopes"] == []
    assert challenges(client, z) == []


def test_concurrent_first_decisions_record_the_session_once(
    database_url: str, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    claim = session_claim({"session": session("racy")})
    assert claim is not None

    async def one() -> str | None:
        conn = await AsyncConnection.connect(database_url, row_factory=dict_row)
        async with conn:
            state = await check_session(conn, zone["id"], claim)
            return state.deny_reason

    async def many() -> list[str | None]:
        return await asyncio.gather(*(one() for _ in range(8)))

    assert asyncio.run(many()) == [None] * 8
    row = db.execute("SELECT count(*) AS n FROM sessions WHERE id = 'racy'").fetchone()
    assert row == {"n": 1}
