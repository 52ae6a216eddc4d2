"""Providers: the five routes, defaults, secret extraction at every depth, PATCH secret rules."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.rows import dict_row
from uuid6 import uuid7

from controlplane.keys.provider_secrets import decrypt_provider_secrets
from tests.conftest import TEST_KEK

PROVIDER_KEYS = {
    "id", "zone_id", "name", "identifier", "kind", "owner_type", "config_json",
    "secret_config_keys", "created_at", "updated_at",
}  # fmt: skip


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/providers"


def create(client: TestClient, zone_id: str, **fields: Any) -> dict[str, Any]:
    body = {"identifier": f"p-{uuid7().hex}", "kind": "oauth2", **fields}
    response = client.post(base(zone_id), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def secrets_of(database_url: str, zone_id: str, provider_id: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(
            database_url, row_factory=dict_row
        ) as conn:
            return await decrypt_provider_secrets(conn, TEST_KEK, zone_id, provider_id)

    return asyncio.run(run())


def test_create_applies_the_defaults(client: TestClient, zone: dict[str, Any]) -> None:
    response = client.post(base(zone["id"]), json={"identifier": "github", "kind": "oauth2"})
    assert response.status_code == 201, response.text
    provider = response.json()
    assert set(provider) == PROVIDER_KEYS
    assert provider["zone_id"] == zone["id"]
    assert provider["name"] == "github"
    assert provider["owner_type"] == "customer"
    assert provider["config_json"] == {}
    assert provider["secret_config_keys"] == []
    assert provider["created_at"] == provider["updated_at"]
    assert client.get(f"{base(zone['id'])}/{provider['id']}").json() == provider
    assert client.get(base(zone["id"])).json() == [provider]


@pytest.mark.parametrize("kind", ["oauth2", "oidc", "apikey", "workload"])
def test_every_kind_is_accepted(client: TestClient, zone: dict[str, Any], kind: str) -> None:
    assert create(client, zone["id"], kind=kind)["kind"] == kind


def test_secrets_are_extracted_at_every_depth_and_encrypted(
    client: TestClient, zone: dict[str, Any], db: Any, database_url: str
) -> None:
    body = {
        "identifier": "github",
        "kind": "oauth2",
        "name": "GitHub OAuth",
        "owner_type": "platform",
        "config_json": {
            "token_url": "https://github.com/login/oauth/access_token",
            "client_id": "Iv1.abc",
            "client_secret": "S-client-secret",
            "auth": {"private_key": "S-private-key", "region": "eu", "jwks_uri": "https://j"},
            "items": [{"api_key": "S-item-key", "label": "first"}],
        },
        "secret_config": {"password": "S-password", "scope": "repo"},
    }
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 201, response.text
    provider = response.json()
    assert provider["name"] == "GitHub OAuth" and provider["owner_type"] == "platform"
    assert provider["config_json"] == {
        "token_url": "https://github.com/login/oauth/access_token",
        "client_id": "Iv1.abc",
        "auth": {"region": "eu", "jwks_uri": "https://j"},
        "items": [{"label": "first"}],
    }
    # everything secret_config gives is secret, "scope" too although the pattern misses it
    assert provider["secret_config_keys"] == [
        "auth.private_key",
        "client_secret",
        "items.0.api_key",
        "password",
        "scope",
    ]
    assert "S-" not in response.text
    row = db.execute("SELECT * FROM providers WHERE id = %s", (provider["id"],)).fetchone()
    assert row["config_json"] == provider["config_json"]
    assert b"S-" not in bytes(row["secrets_enc"])
    assert secrets_of(database_url, zone["id"], provider["id"]) == {
        "auth.private_key": "S-private-key",
        "client_secret": "S-client-secret",
        "items.0.api_key": "S-item-key",
        "password": "S-password",
        "scope": "repo",
    }


@pytest.mark.parametrize(
    "key",
    [
        "secret", "Client_Secret", "PASSWORD", "access_token", "refreshToken", "apikey",
        "api_key", "API-Key", "private_key", "privateKey", "private-key", "credentials",
        "passphrase",
    ],
)  # fmt: skip
def test_each_secret_pattern_is_encrypted(
    client: TestClient, zone: dict[str, Any], key: str
) -> None:
    provider = create(client, zone["id"], config_json={key: "hidden-value", "plain": 1})
    assert provider["config_json"] == {"plain": 1}
    assert provider["secret_config_keys"] == [key]


@pytest.mark.parametrize("key", ["token_url", "jwks_uri", "token_endpoint", "TOKEN_URL", "scope"])
def test_urls_and_plain_keys_stay_configuration(
    client: TestClient, zone: dict[str, Any], key: str
) -> None:
    provider = create(client, zone["id"], config_json={key: "https://example.com/x"})
    assert provider["config_json"] == {key: "https://example.com/x"}
    assert provider["secret_config_keys"] == []


def test_non_string_secret_values_are_taken_whole(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    value = {"user": "u", "pass": "p", "nested": [1, 2]}
    provider = create(client, zone["id"], secret_config={"credentials": value, "api_key": 42})
    assert provider["config_json"] == {}
    assert secrets_of(database_url, zone["id"], provider["id"]) == {
        "credentials": value,
        "api_key": 42,
    }


AMBIGUOUS = {"a.b": {"token": 1}, "a": {"b": {"token": 2}}}  # two fields with path a.b.token


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"kind": "oauth2"}, []),
        ({"identifier": "x"}, []),
        ({"identifier": "", "kind": "oauth2"}, ["identifier"]),
        ({"identifier": "x", "kind": "saml"}, ["kind"]),
        ({"identifier": "x", "kind": "oauth2", "config_json": []}, ["config_json"]),
        ({"identifier": "x", "kind": "oauth2", "config_json": None}, ["config_json"]),
        ({"identifier": "x", "kind": "oauth2", "secret_config": "s"}, ["secret_config"]),
        ({"identifier": "x", "kind": "oauth2", "name": ""}, ["name"]),
        ({"identifier": "x", "kind": "oauth2", "secret_config_keys": []}, ["secret_config_keys"]),
        ({"identifier": "x", "kind": "oauth2", "config_json": AMBIGUOUS}, ["secret_config"]),
    ],
)  # fmt: skip
def test_create_rejects_invalid_bodies(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any], path: list[Any]
) -> None:
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


def test_identifier_is_unique_among_active_providers_of_the_zone(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(), make_zone()
    first = create(client, zone["id"], identifier="github")
    second = create(client, zone["id"], identifier="gitlab")
    response = client.post(base(zone["id"]), json={"identifier": "github", "kind": "oidc"})
    assert response.status_code == 409
    assert response.json()["error"] == "provider_identifier_taken"
    response = client.patch(f"{base(zone['id'])}/{second['id']}", json={"identifier": "github"})
    assert response.status_code == 409
    assert response.json()["error"] == "provider_identifier_taken"
    create(client, other["id"], identifier="github")
    assert client.delete(f"{base(zone['id'])}/{first['id']}").status_code == 204
    create(client, zone["id"], identifier="github")


def test_unknown_or_archived_zone_is_zone_not_found(client: TestClient, make_zone: Any) -> None:
    archived = make_zone()
    provider = create(client, archived["id"])
    assert client.delete(f"/v1/zones/{archived['id']}").status_code == 204
    for zone_id in ("no-such-zone", archived["id"]):
        url = f"{base(zone_id)}/{provider['id']}"
        for response in (
            client.get(base(zone_id)),
            client.post(base(zone_id), json={"identifier": "x", "kind": "oauth2"}),
            client.get(url),
            client.patch(url, json={"name": "b"}),
            client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "zone_not_found"


def test_unknown_malformed_or_foreign_ids_are_provider_not_found(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(), make_zone()
    foreign = create(client, other["id"])
    for provider_id in (str(uuid7()), "not-a-uuid", foreign["id"]):
        url = f"{base(zone['id'])}/{provider_id}"
        for response in (
            client.get(url),
            client.patch(url, json={"name": "b"}),
            client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json() == {"error": "provider_not_found"}


def test_patch_plain_fields(client: TestClient, zone: dict[str, Any]) -> None:
    provider = create(client, zone["id"], secret_config={"client_secret": "keep"})
    url = f"{base(zone['id'])}/{provider['id']}"
    changes = {"name": "New", "identifier": "new-id", "kind": "oidc", "owner_type": "partner"}
    response = client.patch(url, json=changes)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert {k: updated[k] for k in changes} == changes
    assert updated["secret_config_keys"] == ["client_secret"]
    assert updated["updated_at"] > provider["updated_at"]
    assert client.get(url).json() == updated


def test_patch_replaces_removes_and_keeps_individual_secrets(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    provider = create(
        client,
        zone["id"],
        config_json={"token_url": "https://t", "client_id": "a"},
        secret_config={"client_secret": "one", "api_key": "two", "auth": {"password": "three"}},
    )
    url = f"{base(zone['id'])}/{provider['id']}"

    # a nested secret leaves its (now empty) parent object in the configuration
    assert provider["config_json"] == {"token_url": "https://t", "client_id": "a", "auth": {}}

    # secret_config only: replace one, remove one, add one; others and the config are kept
    response = client.patch(
        url, json={"secret_config": {"client_secret": "ONE", "api_key": None, "new_token": "four"}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["config_json"] == provider["config_json"]
    assert response.json()["secret_config_keys"] == ["auth.password", "client_secret", "new_token"]
    assert secrets_of(database_url, zone["id"], provider["id"]) == {
        "auth.password": "three",
        "client_secret": "ONE",
        "new_token": "four",
    }

    # config_json replaces the plain configuration; a secret inside it replaces that secret
    response = client.patch(
        url, json={"config_json": {"issuer": "https://i", "auth": {"password": "THREE"}}}
    )
    assert response.json()["config_json"] == {"issuer": "https://i", "auth": {}}
    assert response.json()["secret_config_keys"] == ["auth.password", "client_secret", "new_token"]
    assert secrets_of(database_url, zone["id"], provider["id"])["auth.password"] == "THREE"

    # any key in secret_config is a secret, even one the pattern misses
    response = client.patch(url, json={"secret_config": {"audience": "api"}})
    assert response.json()["config_json"] == {"issuer": "https://i", "auth": {}}
    assert response.json()["secret_config_keys"] == [
        "audience",
        "auth.password",
        "client_secret",
        "new_token",
    ]
    assert "api" not in response.text.replace("https://i", "")

    # removing every secret leaves none
    response = client.patch(
        url,
        json={
            "secret_config": {
                "audience": None,
                "client_secret": None,
                "new_token": None,
                "auth": {"password": None},
            }
        },
    )
    assert response.json()["secret_config_keys"] == []
    assert secrets_of(database_url, zone["id"], provider["id"]) == {}
    assert "ONE" not in response.text and "THREE" not in response.text


def test_patch_errors(client: TestClient, zone: dict[str, Any]) -> None:
    provider = create(client, zone["id"])
    url = f"{base(zone['id'])}/{provider['id']}"
    assert client.patch(url, json={}).json()["error"] == "no_fields"
    for body, path in (
        ({"kind": "saml"}, ["kind"]),
        ({"config_json": None}, ["config_json"]),
        ({"identifier": ""}, ["identifier"]),
        ({"zone_id": "z"}, ["zone_id"]),
    ):
        response = client.patch(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["issues"][0]["path"] == path
    assert client.get(url).json() == provider


def test_delete_archives_unless_an_active_resource_uses_it(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    provider = create(client, zone["id"], secret_config={"api_key": "k"})
    url = f"{base(zone['id'])}/{provider['id']}"
    resource = client.post(
        f"/v1/zones/{zone['id']}/resources",
        json={"identifier": "r", "scopes": ["a"], "credential_provider_id": provider["id"]},
    ).json()
    response = client.delete(url)
    assert response.status_code == 409
    assert response.json()["error"] == "provider_referenced_by_resource"
    assert resource["id"] in response.json()["detail"]
    assert client.get(url).status_code == 200
    assert client.delete(f"/v1/zones/{zone['id']}/resources/{resource['id']}").status_code == 204
    response = client.delete(url)
    assert response.status_code == 204
    assert client.get(url).json() == {"error": "provider_not_found"}
    assert client.delete(url).status_code == 404
    assert client.get(base(zone["id"])).json() == []
    row = db.execute(
        "SELECT archived_at FROM providers WHERE id = %s", (provider["id"],)
    ).fetchone()
    assert row["archived_at"] is not None


def test_every_change_writes_one_audit_event_without_secret_values(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    provider = create(
        client,
        zone["id"],
        config_json={"client_id": "cid"},
        secret_config={"client_secret": "zzz1"},
    )
    url = f"{base(zone['id'])}/{provider['id']}"
    client.patch(url, json={"secret_config": {"client_secret": "zzz2", "api_key": None}})
    client.delete(url)
    rows = db.execute(
        "SELECT event_type, metadata_json FROM audit_events"
        " WHERE event_type LIKE 'provider.%%' ORDER BY occurred_at"
    ).fetchall()
    assert [r["event_type"] for r in rows] == [
        "provider.created",
        "provider.updated",
        "provider.archived",
    ]
    created, updated, _ = (r["metadata_json"] for r in rows)
    assert created["encrypted_fields"] == ["client_secret"]
    assert created["config_json"] == {"client_id": "cid"}
    assert updated["encrypted_fields"] == {"set": ["client_secret"], "removed": ["api_key"]}
    assert all(r["metadata_json"]["provider_id"] == provider["id"] for r in rows)
    assert "zzz" not in str(rows)


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": "nul\u0000", "kind": "oauth2"},
        {"identifier": "x", "kind": "oauth2", "config_json": {"region": "eu\u0000"}},
        {"identifier": "x", "kind": "oauth2", "config_json": {"re\u0000gion": "eu"}},
        {"identifier": "x", "kind": "oauth2", "secret_config": {"api_key\u0000": "k"}},
    ],
)
def test_a_nul_character_is_invalid_body(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any]
) -> None:
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert client.get(base(zone["id"])).json() == []
