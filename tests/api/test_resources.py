"""Resources: the five routes, defaults, identifier uniqueness, URLs and provider references."""

from __future__ import annotations

import random
from typing import Any

import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

RESOURCE_KEYS = {
    "id", "zone_id", "name", "identifier", "upstream_url", "prefix", "scopes",
    "credential_provider_id", "created_at", "updated_at",
}  # fmt: skip


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/resources"


def create(client: TestClient, zone_id: str, **fields: Any) -> dict[str, Any]:
    body = {"identifier": f"resource://{uuid7().hex}", "scopes": ["read"], **fields}
    response = client.post(base(zone_id), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def provider(client: TestClient, zone_id: str) -> dict[str, Any]:
    body = {"identifier": f"p-{uuid7().hex}", "kind": "apikey"}
    response = client.post(f"/v1/zones/{zone_id}/providers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_applies_the_defaults(client: TestClient, zone: dict[str, Any]) -> None:
    body = {"identifier": "resource://my-mcp-server", "scopes": ["read", "write"]}
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 201, response.text
    resource = response.json()
    assert set(resource) == RESOURCE_KEYS
    assert resource["zone_id"] == zone["id"]
    assert resource["name"] == "resource://my-mcp-server"
    assert resource["identifier"] == "resource://my-mcp-server"
    assert resource["scopes"] == ["read", "write"]
    assert resource["upstream_url"] is None
    assert resource["prefix"] is False
    assert resource["credential_provider_id"] is None
    assert resource["created_at"] == resource["updated_at"]
    assert client.get(f"{base(zone['id'])}/{resource['id']}").json() == resource
    assert client.get(base(zone["id"])).json() == [resource]


def test_create_with_every_field(client: TestClient, zone: dict[str, Any]) -> None:
    used = provider(client, zone["id"])
    body = {
        "identifier": "https://api.example.com/v1/",
        "scopes": ["repo:read", "repo:write"],
        "name": "Example API",
        "upstream_url": "https://mcp.internal/",
        "prefix": True,
        "credential_provider_id": used["id"],
    }
    resource = create(client, zone["id"], **body)
    assert {k: resource[k] for k in body} == body


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8080/x", "https://mcp.internal/", "HTTPS://Example.COM", "http://[::1]/"],
)
def test_upstream_url_accepts_http_and_https(
    client: TestClient, zone: dict[str, Any], url: str
) -> None:
    assert create(client, zone["id"], upstream_url=url)["upstream_url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com",
        "/relative/path",
        "https://",
        "https:///path-only",
        "http://host:99999/",
        "https://exa mple.com/",
        "javascript:alert(1)",
        "",
    ],
)
def test_upstream_url_must_be_http_or_https_with_a_host(
    client: TestClient, zone: dict[str, Any], url: str
) -> None:
    body = {"identifier": "r", "scopes": ["read"], "upstream_url": url}
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 400, url
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == ["upstream_url"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"scopes": ["read"]}, []),
        ({"identifier": "r"}, []),
        ({"identifier": "", "scopes": ["read"]}, ["identifier"]),
        ({"identifier": "r", "scopes": []}, ["scopes"]),
        ({"identifier": "r", "scopes": [""]}, ["scopes", 0]),
        ({"identifier": "r", "scopes": "read"}, ["scopes"]),
        ({"identifier": "r", "scopes": ["read"], "prefix": "yes"}, ["prefix"]),
        ({"identifier": "r", "scopes": ["read"], "name": ""}, ["name"]),
        ({"identifier": "r", "scopes": ["read"], "credential_provider_id": "nope"}, None),
        ({"identifier": "r", "scopes": ["read"], "owner": "me"}, ["owner"]),
    ],
)
def test_create_rejects_invalid_bodies(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any], path: list[Any] | None
) -> None:
    response = client.post(base(zone["id"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    if path is not None:
        assert response.json()["issues"][0]["path"] == path


def test_identifiers_are_at_most_2048_characters(client: TestClient, zone: dict[str, Any]) -> None:
    for url in (base(zone["id"]), f"/v1/zones/{zone['id']}/providers"):
        body: dict[str, Any] = {"identifier": "i" * 2049}
        if url == base(zone["id"]):
            body["scopes"] = ["read"]
        response = client.post(url, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["issues"][0]["path"] == ["identifier"]
    assert (
        client.post(base(zone["id"]), json={"identifier": "i" * 2048, "scopes": ["r"]}).status_code
        == 201
    )
    # within the length, but too many bytes for the unique index: a 400, never a 500
    rng = random.Random(7)  # incompressible 3-byte characters: ~6 kB
    wide_identifier = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(2048))
    wide = client.post(base(zone["id"]), json={"identifier": wide_identifier, "scopes": ["r"]})
    assert wide.status_code == 400, wide.text
    assert wide.json()["error"] == "invalid_body"
    assert wide.json()["issues"][0]["message"] == "a value is too large to be stored"
    assert len(client.get(base(zone["id"])).json()) == 1  # nothing half-made


def test_identifier_is_unique_among_active_resources_of_the_zone(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(), make_zone()
    first = create(client, zone["id"], identifier="resource://dup")
    response = client.post(base(zone["id"]), json={"identifier": "resource://dup", "scopes": ["a"]})
    assert response.status_code == 409
    assert response.json()["error"] == "resource_identifier_taken"
    # another zone may use it; an archived resource frees it
    create(client, other["id"], identifier="resource://dup")
    assert client.delete(f"{base(zone['id'])}/{first['id']}").status_code == 204
    create(client, zone["id"], identifier="resource://dup")


def test_credential_provider_must_be_an_active_provider_of_the_zone(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(), make_zone()
    archived = provider(client, zone["id"])
    assert client.delete(f"/v1/zones/{zone['id']}/providers/{archived['id']}").status_code == 204
    foreign = provider(client, other["id"])
    for provider_id in (str(uuid7()), archived["id"], foreign["id"]):
        body = {"identifier": "r", "scopes": ["a"], "credential_provider_id": provider_id}
        response = client.post(base(zone["id"]), json=body)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "provider_not_found"
    assert client.get(base(zone["id"])).json() == []


def test_unknown_or_archived_zone_is_zone_not_found(client: TestClient, make_zone: Any) -> None:
    archived = make_zone()
    resource = create(client, archived["id"])
    assert client.delete(f"/v1/zones/{archived['id']}").status_code == 204
    for zone_id in ("no-such-zone", archived["id"]):
        url = f"{base(zone_id)}/{resource['id']}"
        for response in (
            client.get(base(zone_id)),
            client.post(base(zone_id), json={"identifier": "r", "scopes": ["a"]}),
            client.get(url),
            client.patch(url, json={"name": "b"}),
            client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "zone_not_found"


def test_unknown_malformed_or_foreign_ids_are_resource_not_found(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(), make_zone()
    foreign = create(client, other["id"])
    for resource_id in (str(uuid7()), "not-a-uuid", foreign["id"]):
        url = f"{base(zone['id'])}/{resource_id}"
        for response in (
            client.get(url),
            client.patch(url, json={"name": "b"}),
            client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json() == {"error": "resource_not_found"}


def test_patch_updates_each_field_and_clears_nullable_ones(
    client: TestClient, zone: dict[str, Any]
) -> None:
    used = provider(client, zone["id"])
    resource = create(client, zone["id"], name="keep-me")
    url = f"{base(zone['id'])}/{resource['id']}"
    changes = {
        "identifier": "resource://renamed",
        "scopes": ["write"],
        "name": "Renamed",
        "upstream_url": "http://upstream:9000/",
        "prefix": True,
        "credential_provider_id": used["id"],
    }
    response = client.patch(url, json=changes)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert {k: updated[k] for k in changes} == changes
    assert updated["created_at"] == resource["created_at"]
    assert updated["updated_at"] > resource["updated_at"]
    cleared = client.patch(url, json={"upstream_url": None, "credential_provider_id": None}).json()
    assert cleared["upstream_url"] is None and cleared["credential_provider_id"] is None
    assert client.get(url).json() == cleared


def test_patch_errors(client: TestClient, zone: dict[str, Any]) -> None:
    taken = create(client, zone["id"], identifier="resource://taken")
    resource = create(client, zone["id"])
    url = f"{base(zone['id'])}/{resource['id']}"
    assert client.patch(url, json={}).json()["error"] == "no_fields"
    response = client.patch(url, json={"identifier": taken["identifier"]})
    assert response.status_code == 409
    assert response.json()["error"] == "resource_identifier_taken"
    response = client.patch(url, json={"credential_provider_id": str(uuid7())})
    assert response.status_code == 404
    assert response.json()["error"] == "provider_not_found"
    for body, path in (
        ({"upstream_url": "ftp://x"}, ["upstream_url"]),
        ({"scopes": []}, ["scopes"]),
        ({"name": None}, ["name"]),
        ({"identifier": None}, ["identifier"]),
        ({"zone_id": "x"}, ["zone_id"]),
    ):
        response = client.patch(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["issues"][0]["path"] == path
    assert client.get(url).json() == resource
    # renaming to its own identifier is not a conflict
    assert client.patch(url, json={"identifier": resource["identifier"]}).status_code == 200


def test_delete_archives(client: TestClient, zone: dict[str, Any], db: Any) -> None:
    resource = create(client, zone["id"])
    url = f"{base(zone['id'])}/{resource['id']}"
    response = client.delete(url)
    assert response.status_code == 204
    assert client.get(url).json() == {"error": "resource_not_found"}
    assert client.delete(url).status_code == 404
    assert client.get(base(zone["id"])).json() == []
    row = db.execute(
        "SELECT archived_at FROM resources WHERE id = %s", (resource["id"],)
    ).fetchone()
    assert row["archived_at"] is not None


def test_every_change_writes_one_audit_event(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    resource = create(client, zone["id"], identifier="resource://audited")
    url = f"{base(zone['id'])}/{resource['id']}"
    client.patch(url, json={"scopes": ["x", "y"]})
    client.delete(url)
    rows = db.execute(
        "SELECT event_type, metadata_json, request_id FROM audit_events"
        " WHERE event_type LIKE 'resource.%%' ORDER BY occurred_at"
    ).fetchall()
    assert [r["event_type"] for r in rows] == [
        "resource.created",
        "resource.updated",
        "resource.archived",
    ]
    assert rows[0]["metadata_json"]["identifier"] == "resource://audited"
    assert rows[1]["metadata_json"]["changes"] == {"scopes": ["x", "y"]}
    assert all(r["metadata_json"]["resource_id"] == resource["id"] for r in rows)
    assert all(r["request_id"] for r in rows)


def test_a_nul_character_is_invalid_body(client: TestClient, zone: dict[str, Any]) -> None:
    for body in (
        {"identifier": "r\u0000", "scopes": ["read"]},
        {"identifier": "r", "scopes": ["re\u0000ad"]},
    ):
        response = client.post(base(zone["id"]), json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_body"
