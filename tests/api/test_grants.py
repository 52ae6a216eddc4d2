"""Grants: create, validation, list/get, revoke cascading into sessions and the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from tests.api.runtime_rows import insert_session, now

GRANT_KEYS = {
    "id",
    "zone_id",
    "application_id",
    "user_id",
    "resource_id",
    "scopes",
    "status",
    "created_at",
    "revoked_at",
}


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/grants"


def make_app(client: TestClient, zone_id: str) -> str:
    body = {"name": "Agent", "registration_method": "managed"}
    response = client.post(f"/v1/zones/{zone_id}/applications", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def make_resource(client: TestClient, zone_id: str, scopes: list[str] | None = None) -> str:
    body = {"identifier": f"resource://{uuid7().hex}", "scopes": scopes or ["read", "write"]}
    response = client.post(f"/v1/zones/{zone_id}/resources", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def parts(client: TestClient, zone: dict[str, Any]) -> dict[str, str]:
    """A zone with one application and one resource (scopes read, write, repo:admin)."""
    z = zone["id"]
    return {
        "zone_id": z,
        "application_id": make_app(client, z),
        "resource_id": make_resource(client, z, ["read", "write", "repo:admin"]),
    }


def body_for(parts: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "application_id": parts["application_id"],
        "resource_id": parts["resource_id"],
        "user_id": "user@example.com",
        "scopes": ["read"],
        **fields,
    }


def grant(client: TestClient, parts: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post(base(parts["zone_id"]), json=body_for(parts, **fields))
    assert response.status_code == 201, response.text
    return response.json()


def outbox(db: psycopg.Connection[Any], zone_id: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT topic, payload FROM outbox WHERE zone_id = %s AND topic = 'caracal.session.revoke'"
        " ORDER BY payload->>'session_id'",
        (zone_id,),
    ).fetchall()


def events(db: psycopg.Connection[Any], zone_id: str, event_type: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM audit_events WHERE zone_id = %s AND event_type = %s",
        (zone_id, event_type),
    ).fetchall()


def test_create_returns_an_active_grant_and_audits_it(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    created = grant(client, parts, scopes=["read", "repo:admin", "read"])
    assert set(created) == GRANT_KEYS
    assert created["status"] == "active"
    assert created["revoked_at"] is None
    assert created["zone_id"] == parts["zone_id"]
    assert created["application_id"] == parts["application_id"]
    assert created["resource_id"] == parts["resource_id"]
    assert created["user_id"] == "user@example.com"
    assert created["scopes"] == ["read", "repo:admin"]  # duplicates dropped, order kept
    assert created["created_at"].endswith("Z")
    assert client.get(f"{base(parts['zone_id'])}/{created['id']}").json() == created
    (event,) = events(db, parts["zone_id"], "grant.created")
    assert event["metadata_json"]["grant_id"] == created["id"]
    assert event["metadata_json"]["scopes"] == ["read", "repo:admin"]
    assert event["decision"] is None and event["actor_id"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"application_id": None}, ["application_id"]),
        ({"application_id": "not-a-uuid"}, ["application_id"]),
        ({"resource_id": 7}, ["resource_id"]),
        ({"user_id": ""}, ["user_id"]),
        ({"user_id": "u" * 513}, ["user_id"]),
        ({"scopes": []}, ["scopes"]),
        ({"scopes": [f"s{i}" for i in range(65)]}, ["scopes"]),
        ({"scopes": ["read", "Read"]}, ["scopes", 1]),
        ({"scopes": ["has space"]}, ["scopes", 0]),
        ({"scopes": ["read\n"]}, ["scopes", 0]),
        ({"scopes": ["a" * 201]}, ["scopes", 0]),
        ({"scopes": "read"}, ["scopes"]),
        ({"extra": 1}, ["extra"]),
    ],
)
def test_invalid_bodies_are_invalid_body(
    client: TestClient, parts: dict[str, str], change: dict[str, Any], path: list[Any]
) -> None:
    body = body_for(parts)
    body.update(change)
    response = client.post(base(parts["zone_id"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


@pytest.mark.parametrize("missing", ["application_id", "user_id", "resource_id", "scopes"])
def test_every_field_is_required(client: TestClient, parts: dict[str, str], missing: str) -> None:
    body = body_for(parts)
    del body[missing]
    response = client.post(base(parts["zone_id"]), json=body)
    assert response.status_code == 400
    issue = response.json()["issues"][0]
    assert issue["path"] == []  # a missing field: the object's path, named in the message
    assert missing in issue["message"]


def test_limits_are_inclusive(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    scopes = [f"s{i}" for i in range(63)] + ["a" * 200]
    parts = {"zone_id": z, "application_id": make_app(client, z)}
    parts["resource_id"] = make_resource(client, z, scopes)
    created = grant(client, parts, scopes=scopes, user_id="u" * 512)
    assert len(created["scopes"]) == 64


def test_scopes_outside_the_resource_are_403(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    response = client.post(base(parts["zone_id"]), json=body_for(parts, scopes=["read", "admin"]))
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "grant_scopes_exceed_resource"
    assert "admin" in body["detail"]
    assert db.execute("SELECT count(*) AS n FROM grants").fetchone() == {"n": 0}


def test_application_must_be_active_in_the_zone(
    client: TestClient, make_zone: Any, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    z = parts["zone_id"]
    archived = make_app(client, z)
    assert client.delete(f"/v1/zones/{z}/applications/{archived}").status_code == 204
    expired = make_app(client, z)
    db.execute(
        "UPDATE applications SET expires_at = now() - interval '1 s' WHERE id = %s", (expired,)
    )
    elsewhere = make_app(client, make_zone()["id"])
    for app_id in [str(uuid7()), archived, expired, elsewhere]:
        response = client.post(base(z), json=body_for(parts, application_id=app_id))
        assert response.status_code == 404, app_id
        assert response.json() == {"error": "application_not_found"}


def test_resource_must_be_active_in_the_zone(
    client: TestClient, make_zone: Any, parts: dict[str, str]
) -> None:
    z = parts["zone_id"]
    archived = make_resource(client, z)
    assert client.delete(f"/v1/zones/{z}/resources/{archived}").status_code == 204
    elsewhere = make_resource(client, make_zone()["id"])
    for resource_id in [str(uuid7()), archived, elsewhere]:
        response = client.post(base(z), json=body_for(parts, resource_id=resource_id))
        assert response.status_code == 404, resource_id
        assert response.json() == {"error": "resource_not_found"}


def test_get_unknown_grant_is_grant_not_found(
    client: TestClient, make_zone: Any, parts: dict[str, str]
) -> None:
    z = parts["zone_id"]
    other = make_zone()["id"]
    theirs = grant(
        client,
        {
            "zone_id": other,
            "application_id": make_app(client, other),
            "resource_id": make_resource(client, other),
        },
    )
    for grant_id in [str(uuid7()), "not-a-uuid", theirs["id"]]:
        for method in ("GET", "DELETE"):
            response = client.request(method, f"{base(z)}/{grant_id}")
            assert response.status_code == 404, (method, grant_id)
            assert response.json() == {"error": "grant_not_found"}


def test_unknown_zone_is_zone_not_found(client: TestClient, parts: dict[str, str]) -> None:
    response = client.post(base("nowhere"), json=body_for(parts))
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}
    assert client.get(base("nowhere")).json() == {"error": "zone_not_found"}


def test_list_filters_and_pages(client: TestClient, parts: dict[str, str]) -> None:
    z = parts["zone_id"]
    other_app = make_app(client, z)
    other_resource = make_resource(client, z)
    made = [
        grant(client, parts, user_id="alice"),
        grant(client, parts, user_id="bob"),
        grant(client, parts, user_id="alice", application_id=other_app),
        grant(client, parts, user_id="carol", resource_id=other_resource),
    ]
    assert client.delete(f"{base(z)}/{made[1]['id']}").status_code == 204

    def listed(query: str = "") -> list[str]:
        response = client.get(base(z) + ("?" + query if query else ""))
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["rows"]]

    newest_first = [g["id"] for g in reversed(made)]
    assert listed() == newest_first
    assert listed("user_id=alice") == [made[2]["id"], made[0]["id"]]
    assert listed(f"application_id={other_app}") == [made[2]["id"]]
    assert listed(f"resource_id={other_resource}") == [made[3]["id"]]
    assert listed("status=revoked") == [made[1]["id"]]
    assert listed("status=active") == [g for g in newest_first if g != made[1]["id"]]
    assert listed(f"user_id=alice&application_id={parts['application_id']}") == [made[0]["id"]]
    page = client.get(base(z) + "?limit=3").json()
    assert [r["id"] for r in page["rows"]] == newest_first[:3]
    rest = client.get(base(z) + f"?limit=3&cursor={page['next_cursor']}").json()
    assert [r["id"] for r in rest["rows"]] == newest_first[3:]
    assert rest["next_cursor"] is None
    assert client.get(base(z)).json()["rows"][2]["status"] == "revoked"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("application_id=nope", ["application_id"]),
        ("resource_id=1", ["resource_id"]),
        ("status=expired", ["status"]),
        ("limit=0", ["limit"]),
        ("limit=1001", ["limit"]),
        ("limit=10.0", ["limit"]),
        ("user_id=u%00", ["user_id"]),
    ],
)
def test_bad_list_queries_are_invalid_query(
    client: TestClient, zone: dict[str, Any], query: str, path: list[str]
) -> None:
    response = client.get(f"{base(zone['id'])}?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_query"
    assert response.json()["issues"][0]["path"] == path


def test_a_sessions_cursor_is_not_a_grants_cursor(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    z = parts["zone_id"]
    for i in range(2):
        insert_session(db, z, f"s{i}")
    cursor = client.get(f"/v1/zones/{z}/sessions?limit=1").json()["next_cursor"]
    response = client.get(f"{base(z)}?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


def session_statuses(client: TestClient, zone_id: str) -> dict[str, str]:
    """``{session id: status}`` of the zone's sessions, as the sessions API lists them."""
    rows = client.get(f"/v1/zones/{zone_id}/sessions?limit=1000").json()["rows"]
    return {r["id"]: r["status"] for r in rows}


def test_revoke_cascades_to_the_users_active_sessions_and_the_outbox(
    client: TestClient, make_zone: Any, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    z = parts["zone_id"]
    other_zone = make_zone()["id"]
    t = now()
    insert_session(db, z, "alice-1", subject_id="alice")
    insert_session(
        db, z, "alice-2", subject_id="alice", session_type="delegated", parent_id="alice-1"
    )
    insert_session(db, z, "alice-expired", subject_id="alice", expires_at=t - timedelta(seconds=1))
    insert_session(db, z, "alice-revoked", subject_id="alice", revoked_at=t - timedelta(hours=1))
    insert_session(db, z, "bob-1", subject_id="bob")
    insert_session(db, other_zone, "alice-elsewhere", subject_id="alice")
    created = grant(client, parts, user_id="alice")

    response = client.delete(f"{base(z)}/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""

    revoked = client.get(f"{base(z)}/{created['id']}").json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"].endswith("Z")
    assert session_statuses(client, z) == {
        "alice-1": "revoked",
        "alice-2": "revoked",
        "alice-expired": "expired",
        "alice-revoked": "revoked",
        "bob-1": "active",
    }
    old = db.execute("SELECT revoked_at FROM sessions WHERE id = 'alice-revoked'").fetchone()
    assert old is not None and old["revoked_at"] < t
    elsewhere = client.get(f"/v1/zones/{other_zone}/sessions/alice-elsewhere").json()
    assert elsewhere["status"] == "active"

    messages = outbox(db, z)
    assert [m["payload"]["session_id"] for m in messages] == ["alice-1", "alice-2"]
    assert messages[0]["payload"] == {
        "zone_id": z,
        "session_id": "alice-1",
        "subject_id": "alice",
        "reason": "grant_revoked",
        "grant_id": created["id"],
    }
    (event,) = events(db, z, "grant.revoked")
    assert event["metadata_json"]["revoked_sessions"] == 2
    assert event["metadata_json"]["grant_id"] == created["id"]

    # a second revoke: 204, nothing changes, nothing enqueued or audited
    insert_session(db, z, "alice-new", subject_id="alice")
    assert client.delete(f"{base(z)}/{created['id']}").status_code == 204
    assert client.get(f"{base(z)}/{created['id']}").json() == revoked
    assert len(outbox(db, z)) == 2
    assert len(events(db, z, "grant.revoked")) == 1
    assert client.get(f"/v1/zones/{z}/sessions/alice-new").json()["status"] == "active"


def test_revoke_cascades_down_delegation_chains(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    z = parts["zone_id"]
    insert_session(db, z, "alice-1", subject_id="alice")
    insert_session(
        db, z, "agent-1", subject_id="agent", session_type="delegated", parent_id="alice-1"
    )
    insert_session(
        db, z, "tool-1", subject_id="tool", session_type="delegated", parent_id="agent-1"
    )
    insert_session(
        db, z, "agent-2", subject_id="agent", session_type="delegated", parent_id="bob-1"
    )
    insert_session(db, z, "bob-1", subject_id="bob")
    created = grant(client, parts, user_id="alice")

    assert client.delete(f"{base(z)}/{created['id']}").status_code == 204

    assert session_statuses(client, z) == {
        "alice-1": "revoked",
        "agent-1": "revoked",
        "tool-1": "revoked",
        "agent-2": "active",  # delegated from bob, not from alice
        "bob-1": "active",
    }
    payloads = [m["payload"] for m in outbox(db, z)]
    assert [(p["session_id"], p["subject_id"]) for p in payloads] == [
        ("agent-1", "agent"),
        ("alice-1", "alice"),
        ("tool-1", "tool"),
    ]
    assert {p["reason"] for p in payloads} == {"grant_revoked"}
    assert {p["grant_id"] for p in payloads} == {created["id"]}
    (event,) = events(db, z, "grant.revoked")
    assert event["metadata_json"]["revoked_sessions"] == 3


def test_revoke_without_sessions_enqueues_nothing(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    created = grant(client, parts, user_id="nobody")
    assert client.delete(f"{base(parts['zone_id'])}/{created['id']}").status_code == 204
    assert outbox(db, parts["zone_id"]) == []
    assert len(events(db, parts["zone_id"], "grant.revoked")) == 1


def test_grants_are_immutable_except_revocation(
    client: TestClient, parts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    created = grant(client, parts)
    with pytest.raises(psycopg.errors.RestrictViolation):
        db.execute("UPDATE grants SET scopes = '{write}' WHERE id = %s", (created["id"],))
    with pytest.raises(psycopg.errors.RestrictViolation):
        db.execute("DELETE FROM grants WHERE id = %s", (created["id"],))
    assert client.delete(f"{base(parts['zone_id'])}/{created['id']}").status_code == 204
    with pytest.raises(psycopg.errors.RestrictViolation):
        db.execute("UPDATE grants SET revoked_at = NULL WHERE id = %s", (created["id"],))
