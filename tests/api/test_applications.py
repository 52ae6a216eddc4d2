"""Applications: the five managed routes, defaults, secrets, expiry, errors and audit rows."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from controlplane.keys.crypto import SecretHasher

APP_KEYS = {
    "id", "zone_id", "name", "registration_method", "credential_type", "traits", "consent",
    "created_at",
}  # fmt: skip
VERIFY = SecretHasher(time_cost=1, memory_cost=1024)


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/applications"


def create(client: TestClient, zone_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Agent", "registration_method": "managed", **fields}
    response = client.post(base(zone_id), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stored(db: psycopg.Connection[Any], app_id: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM applications WHERE id = %s", (app_id,)).fetchone()
    assert row is not None
    return row


def events(db: psycopg.Connection[Any], event_type: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM audit_events WHERE event_type = %s ORDER BY occurred_at", (event_type,)
    ).fetchall()


def test_create_applies_the_defaults(client: TestClient, zone: dict[str, Any], db: Any) -> None:
    app = create(client, zone["id"], name="My Agent")
    assert set(app) == APP_KEYS
    assert app["zone_id"] == zone["id"]
    assert app["name"] == "My Agent"
    assert app["registration_method"] == "managed"
    assert app["credential_type"] == "public"
    assert app["traits"] == []
    assert app["consent"] is False
    assert app["created_at"].endswith("Z")
    assert stored(db, app["id"])["client_secret_hash"] is None
    assert client.get(f"{base(zone['id'])}/{app['id']}").json() == app
    assert client.get(base(zone["id"])).json() == [app]


def test_create_with_every_field_never_echoes_the_secret(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    body = {
        "name": "Billing bot",
        "registration_method": "dcr",
        "credential_type": "password",
        "client_secret": "given-secret-value-1",
        "traits": ["internal", "batch"],
        "consent": True,
    }
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 201, response.text
    app = response.json()
    assert set(app) == APP_KEYS
    assert "given-secret-value-1" not in response.text
    assert {k: app[k] for k in body if k != "client_secret"} == {
        k: v for k, v in body.items() if k != "client_secret"
    }
    secret_hash = stored(db, app["id"])["client_secret_hash"]
    assert secret_hash.startswith("$argon2id$")
    assert VERIFY.verify(secret_hash, "given-secret-value-1")


@pytest.mark.parametrize("credential_type", ["token", "password"])
def test_token_and_password_without_a_secret_get_one_generated_once(
    client: TestClient, zone: dict[str, Any], db: Any, credential_type: str
) -> None:
    app = create(client, zone["id"], credential_type=credential_type)
    secret = app.pop("client_secret")
    assert secret.startswith("cs_") and len(secret) == 46
    assert set(app) == APP_KEYS
    assert VERIFY.verify(stored(db, app["id"])["client_secret_hash"], secret)
    again = client.get(f"{base(zone['id'])}/{app['id']}").json()
    assert "client_secret" not in again
    assert again == app
    assert all("client_secret" not in a for a in client.get(base(zone["id"])).json())


@pytest.mark.parametrize("credential_type", ["public-key", "url", "public"])
def test_other_credential_types_get_no_generated_secret(
    client: TestClient, zone: dict[str, Any], db: Any, credential_type: str
) -> None:
    app = create(client, zone["id"], credential_type=credential_type)
    assert "client_secret" not in app
    assert stored(db, app["id"])["client_secret_hash"] is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"registration_method": "managed"}, []),  # a missing field: the object's path
        ({"name": "a"}, []),
        ({"name": "", "registration_method": "managed"}, ["name"]),
        ({"name": "a", "registration_method": "manual"}, ["registration_method"]),
        (
            {"name": "a", "registration_method": "managed", "credential_type": "x"},
            ["credential_type"],
        ),
        ({"name": "a", "registration_method": "managed", "traits": "x"}, ["traits"]),
        ({"name": "a", "registration_method": "managed", "traits": [1]}, ["traits", 0]),
        ({"name": "a", "registration_method": "managed", "consent": "implicit"}, ["consent"]),
        ({"name": "a", "registration_method": "managed", "client_secret": ""}, ["client_secret"]),
        ({"name": "a", "registration_method": "managed", "expires_in": 60}, ["expires_in"]),
        ({"name": "a", "registration_method": "managed", "colour": "red"}, ["colour"]),
    ],
)
def test_create_rejects_invalid_bodies(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any], path: list[Any]
) -> None:
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


def test_unknown_or_archived_zone_is_zone_not_found(client: TestClient, make_zone: Any) -> None:
    archived = make_zone()
    app = create(client, archived["id"])
    assert client.delete(f"/v1/zones/{archived['id']}").status_code == 204
    for zone_id in ("no-such-zone", archived["id"]):
        calls = [
            client.get(base(zone_id)),
            client.post(base(zone_id), json={"name": "a", "registration_method": "managed"}),
            client.post(f"{base(zone_id)}/register", json={"name": "a"}),
            client.get(f"{base(zone_id)}/{app['id']}"),
            client.patch(f"{base(zone_id)}/{app['id']}", json={"name": "b"}),
            client.delete(f"{base(zone_id)}/{app['id']}"),
        ]
        for response in calls:
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "zone_not_found"


def test_unknown_malformed_or_foreign_ids_are_application_not_found(
    client: TestClient, make_zone: Any
) -> None:
    mine, other = make_zone(), make_zone()
    foreign = create(client, other["id"])
    for app_id in (str(uuid7()), "not-a-uuid", foreign["id"]):
        url = f"{base(mine['id'])}/{app_id}"
        for response in (
            client.get(url),
            client.patch(url, json={"name": "b"}),
            client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json() == {"error": "application_not_found"}


def test_list_is_ordered_and_confined_to_the_zone(client: TestClient, make_zone: Any) -> None:
    mine, other = make_zone(), make_zone()
    first = create(client, mine["id"], name="first")
    second = create(client, mine["id"], name="second")
    create(client, other["id"], name="elsewhere")
    assert [a["id"] for a in client.get(base(mine["id"])).json()] == [first["id"], second["id"]]


def test_patch_updates_each_field(client: TestClient, zone: dict[str, Any], db: Any) -> None:
    app = create(client, zone["id"], credential_type="url")
    url = f"{base(zone['id'])}/{app['id']}"
    changes = {
        "name": "Renamed",
        "traits": ["a", "b"],
        "consent": True,
        "credential_type": "public-key",
        "registration_method": "managed",
    }
    response = client.patch(url, json=changes)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert {k: updated[k] for k in changes} == changes
    assert updated["id"] == app["id"] and updated["created_at"] == app["created_at"]
    assert client.get(url).json() == updated
    row = stored(db, app["id"])
    assert row["updated_at"] > row["created_at"]


def test_patch_rehashes_a_new_client_secret(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    app = create(client, zone["id"], credential_type="token", client_secret="first-secret")
    url = f"{base(zone['id'])}/{app['id']}"
    response = client.patch(url, json={"client_secret": "second-secret"})
    assert response.status_code == 200, response.text
    assert "client_secret" not in response.json()
    secret_hash = stored(db, app["id"])["client_secret_hash"]
    assert VERIFY.verify(secret_hash, "second-secret")
    assert not VERIFY.verify(secret_hash, "first-secret")


def test_patch_to_a_secret_type_without_a_secret_generates_one(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    app = create(client, zone["id"])
    url = f"{base(zone['id'])}/{app['id']}"
    response = client.patch(url, json={"credential_type": "token"})
    assert response.status_code == 200, response.text
    secret = response.json()["client_secret"]
    assert VERIFY.verify(stored(db, app["id"])["client_secret_hash"], secret)
    # it now has a secret: switching to password keeps it and generates nothing
    response = client.patch(url, json={"credential_type": "password"})
    assert "client_secret" not in response.json()
    assert VERIFY.verify(stored(db, app["id"])["client_secret_hash"], secret)


def test_patch_errors(client: TestClient, zone: dict[str, Any]) -> None:
    app = create(client, zone["id"])
    url = f"{base(zone['id'])}/{app['id']}"
    response = client.patch(url, json={})
    assert response.status_code == 400
    assert response.json()["error"] == "no_fields"
    response = client.patch(url, json={"registration_method": "dcr"})
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["registration_method"]
    for body, path in (
        ({"name": ""}, ["name"]),
        ({"credential_type": "none"}, ["credential_type"]),
        ({"consent": None}, ["consent"]),
        ({"expires_in": 5}, ["expires_in"]),
    ):
        response = client.patch(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_body"
        assert response.json()["issues"][0]["path"] == path
    assert client.get(url).json() == app


def test_downgrade_to_public_when_no_active_policy_references_it(
    client: TestClient, zone: dict[str, Any]
) -> None:
    """The "not referenced" path; the referenced path is in test_app_references.py."""
    app = create(client, zone["id"], credential_type="token")
    response = client.patch(f"{base(zone['id'])}/{app['id']}", json={"credential_type": "public"})
    assert response.status_code == 200, response.text
    assert response.json()["credential_type"] == "public"


def test_delete_archives(client: TestClient, zone: dict[str, Any], db: Any) -> None:
    app = create(client, zone["id"])
    keep = create(client, zone["id"], name="keep")
    url = f"{base(zone['id'])}/{app['id']}"
    response = client.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(url).json() == {"error": "application_not_found"}
    assert client.delete(url).status_code == 404
    assert client.patch(url, json={"name": "x"}).status_code == 404
    assert [a["id"] for a in client.get(base(zone["id"])).json()] == [keep["id"]]
    assert stored(db, app["id"])["archived_at"] is not None


def test_an_expired_application_counts_as_archived(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    app = create(client, zone["id"])
    db.execute(
        "UPDATE applications SET expires_at = now() - interval '1 second' WHERE id = %s",
        (app["id"],),
    )
    url = f"{base(zone['id'])}/{app['id']}"
    assert client.get(base(zone["id"])).json() == []
    for response in (client.get(url), client.patch(url, json={"name": "x"}), client.delete(url)):
        assert response.status_code == 404
        assert response.json()["error"] == "application_not_found"


def test_every_change_writes_one_audit_event_without_secrets(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    headers = {"X-Request-Id": "req-app-create"}
    response = client.post(
        base(zone["id"]),
        json={"name": "A", "registration_method": "managed", "credential_type": "token"},
        headers=headers,
    )
    app = response.json()
    url = f"{base(zone['id'])}/{app['id']}"
    client.patch(url, json={"name": "B", "client_secret": "patched-secret-42"})
    client.patch(url, json={"credential_type": "public"})
    client.delete(url)
    created, updated, archived = (
        events(db, "application.created"),
        events(db, "application.updated"),
        events(db, "application.archived"),
    )
    assert len(created) == len(archived) == 1 and len(updated) == 2
    assert created[0]["request_id"] == "req-app-create"
    assert created[0]["zone_id"] == zone["id"]
    assert created[0]["decision"] is None
    assert created[0]["metadata_json"]["application_id"] == app["id"]
    assert created[0]["metadata_json"]["generated"] == ["client_secret"]
    assert updated[0]["metadata_json"]["changes"] == {"name": "B"}
    assert updated[0]["metadata_json"]["changed"] == ["client_secret", "name"]
    # credential_type matches the secret-key pattern but is no secret: the record keeps it
    assert created[0]["metadata_json"]["credential_type"] == "token"
    assert updated[1]["metadata_json"]["changes"] == {"credential_type": "public"}
    assert archived[0]["metadata_json"]["application_id"] == app["id"]
    text = str([created, updated, archived])
    assert app["client_secret"] not in text
    assert "patched-secret-42" not in text


def test_a_failed_call_writes_no_audit_event(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    client.post(base(zone["id"]), json={"name": ""})
    client.patch(f"{base(zone['id'])}/{uuid7()}", json={"name": "x"})
    assert (
        db.execute(
            "SELECT count(*) AS n FROM audit_events WHERE event_type LIKE 'application.%%'"
        ).fetchone()["n"]
        == 0
    )


def test_a_nul_character_is_invalid_body(client: TestClient, zone: dict[str, Any]) -> None:
    for body in (
        {"name": "a\u0000", "registration_method": "managed"},
        {"name": "a", "registration_method": "managed", "traits": ["t\u0000"]},
    ):
        response = client.post(base(zone["id"]), json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_body"
    app = create(client, zone["id"])
    response = client.patch(f"{base(zone['id'])}/{app['id']}", json={"name": "b\u0000"})
    assert response.status_code == 400
    assert client.get(f"{base(zone['id'])}/{app['id']}").json() == app
