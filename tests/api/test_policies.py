"""Policies: create with version 1, list, get with history, new versions, archive, Rego errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from tests.api.policy_helpers import ALLOW, DENY, add_version, create_policy, rego, sha
from tests.conftest import bearer

VERSION_KEYS = {"id", "policy_id", "version", "content_sha256", "schema_version", "created_at"}
POLICY_KEYS = {
    "id", "zone_id", "name", "description", "owner_type", "created_by", "created_at", "version",
}  # fmt: skip


def test_create_returns_the_policy_with_version_1_and_defaults(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    response = client.post(
        f"/v1/zones/{zone['id']}/policies", json={"name": "RBAC", "content": ALLOW}
    )
    assert response.status_code == 201, response.text
    policy = response.json()
    assert set(policy) == POLICY_KEYS
    assert policy["zone_id"] == zone["id"]
    assert policy["name"] == "RBAC"
    assert policy["description"] is None
    assert policy["owner_type"] == "customer"
    env_token = db.execute("SELECT id FROM admin_tokens").fetchone()
    assert policy["created_by"] == str(env_token["id"])
    assert policy["created_at"].endswith("Z")
    version = policy["version"]
    assert set(version) == VERSION_KEYS
    assert version["policy_id"] == policy["id"]
    assert version["version"] == 1
    assert version["content_sha256"] == sha(ALLOW)
    assert version["schema_version"] == "2026-03-16"
    event = db.execute(
        "SELECT * FROM audit_events WHERE event_type = 'policy.created' AND zone_id = %s",
        (zone["id"],),
    ).fetchone()
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["metadata_json"]["policy_id"] == policy["id"]
    assert event["metadata_json"]["policy_version_id"] == version["id"]


def test_create_with_every_field(client: TestClient, zone: dict[str, Any]) -> None:
    content = "package caracal.authz\n\n# Zürich — ünïcode\nresult := true\n"
    policy = create_policy(
        client,
        zone["id"],
        content,
        name="Custom",
        description="what it does",
        owner_type="platform",
        schema_version="2027-01-01",
    )
    assert policy["description"] == "what it does"
    assert policy["owner_type"] == "platform"
    assert policy["version"]["schema_version"] == "2027-01-01"
    assert policy["version"]["content_sha256"] == sha(content)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("package caracal.authz\n\nresult := {\n", "policy.rego:"),
        ("package caracal.authz\n\nresult if { input.x = = 1 }\n", "policy.rego:3:"),
        ("package other.pkg\n\nresult := true\n", "package must be caracal.authz"),
        ("package caracal.authz\n\nallow := true\n", 'rule named "result"'),
        ("", "policy.rego"),
        ("not rego at all", "policy.rego:1:"),
        ("package caracal.authz\nresult := true\x00\n", "NUL"),
        # regorus would parse this for hours (time doubles with each level)
        (
            "package caracal.authz\nresult := " + "[" * 40 + "]" * 40 + "\n",
            "policy.rego:2:23: brackets nested deeper than 12 levels",
        ),
    ],
)
def test_invalid_rego_is_422_with_one_readable_message(
    client: TestClient, zone: dict[str, Any], content: str, needle: str
) -> None:
    response = client.post(
        f"/v1/zones/{zone['id']}/policies", json={"name": "bad", "content": content}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_rego"
    assert needle in body["detail"]
    assert "\n" not in body["detail"]
    assert "backtrace" not in body["detail"].lower()
    assert "panicked" not in body["detail"]
    assert client.get(f"/v1/zones/{zone['id']}/policies").json() == []


def test_nesting_is_counted_outside_strings_and_comments_up_to_12(
    client: TestClient, zone: dict[str, Any]
) -> None:
    # "[1, [1, …" parses fast at any depth; the limit is on depth alone
    twelve = "package caracal.authz\n# ((((((((((((((\nresult := " + "[1, " * 12 + "]" * 12
    twelve += '\nnote := "' + "{" * 30 + '"\n'
    created = client.post(
        f"/v1/zones/{zone['id']}/policies", json={"name": "deep", "content": twelve}
    )
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "body",
    [
        {"content": ALLOW},
        {"name": "x"},
        {"name": "", "content": ALLOW},
        {"name": "x", "content": 5},
        {"name": "x", "content": ALLOW, "extra": 1},
        {"name": "x", "content": ALLOW, "owner_type": ""},
        {"name": "x\u0000y", "content": ALLOW},
    ],
)
def test_bad_bodies_are_400_invalid_body(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any]
) -> None:
    response = client.post(f"/v1/zones/{zone['id']}/policies", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"]


def test_unknown_zone_is_404(client: TestClient) -> None:
    assert client.get("/v1/zones/nope/policies").json() == {"error": "zone_not_found"}
    response = client.post("/v1/zones/nope/policies", json={"name": "x", "content": ALLOW})
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}


def test_list_has_latest_version_without_content_and_hides_archived(
    client: TestClient, zone: dict[str, Any], make_zone: Any
) -> None:
    z = zone["id"]
    first = create_policy(client, z, ALLOW, name="first")
    second = create_policy(client, z, DENY, name="second")
    gone = create_policy(client, z, ALLOW, name="gone")
    v2 = add_version(client, z, first["id"], rego("v2"))
    create_policy(client, make_zone()["id"], ALLOW, name="other zone")
    assert client.delete(f"/v1/zones/{z}/policies/{gone['id']}").status_code == 204
    listed = client.get(f"/v1/zones/{z}/policies").json()
    assert [p["id"] for p in listed] == [first["id"], second["id"]]
    assert listed[0]["version"] == v2
    assert listed[1]["version"] == second["version"]
    for item in listed:
        assert set(item) == POLICY_KEYS
        assert "content" not in item["version"]


def test_get_returns_every_version_with_content(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    policy = create_policy(client, z, ALLOW)
    v2 = add_version(client, z, policy["id"], rego("two"))
    v3 = add_version(client, z, policy["id"], rego("three", allow=False))
    response = client.get(f"/v1/zones/{z}/policies/{policy['id']}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == POLICY_KEYS | {"versions"}
    assert body["version"] == v3
    assert [v["version"] for v in body["versions"]] == [1, 2, 3]
    assert [v["content"] for v in body["versions"]] == [ALLOW, rego("two"), rego("three", False)]
    assert {k: body["versions"][1][k] for k in VERSION_KEYS} == v2
    assert body["versions"][0]["id"] == policy["version"]["id"]


def test_get_unknown_archived_foreign_or_malformed_id_is_404(
    client: TestClient, zone: dict[str, Any], make_zone: Any
) -> None:
    z = zone["id"]
    foreign = create_policy(client, make_zone()["id"])
    archived = create_policy(client, z)
    client.delete(f"/v1/zones/{z}/policies/{archived['id']}")
    for policy_id in (str(uuid7()), "not-a-uuid", foreign["id"], archived["id"]):
        for response in (
            client.get(f"/v1/zones/{z}/policies/{policy_id}"),
            client.post(f"/v1/zones/{z}/policies/{policy_id}/versions", json={"content": ALLOW}),
            client.delete(f"/v1/zones/{z}/policies/{policy_id}"),
        ):
            assert response.status_code == 404, (policy_id, response.text)
            assert response.json() == {"error": "policy_not_found"}


def test_new_versions_are_numbered_and_validated(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    policy = create_policy(client, z)
    response = client.post(
        f"/v1/zones/{z}/policies/{policy['id']}/versions",
        json={"content": DENY, "schema_version": "2026-06-01"},
    )
    assert response.status_code == 201, response.text
    v2 = response.json()
    assert set(v2) == VERSION_KEYS
    assert v2["version"] == 2
    assert v2["policy_id"] == policy["id"]
    assert v2["schema_version"] == "2026-06-01"
    assert v2["content_sha256"] == sha(DENY)
    bad = client.post(
        f"/v1/zones/{z}/policies/{policy['id']}/versions", json={"content": "package x\n"}
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_rego"
    assert add_version(client, z, policy["id"], ALLOW)["version"] == 3
    stored = db.execute(
        "SELECT version, content, content_sha256 FROM policy_versions WHERE policy_id = %s"
        " ORDER BY version",
        (policy["id"],),
    ).fetchall()
    assert [(r["version"], r["content"]) for r in stored] == [(1, ALLOW), (2, DENY), (3, ALLOW)]
    assert all(r["content_sha256"] == sha(r["content"]) for r in stored)
    events = db.execute(
        "SELECT count(*) AS n FROM audit_events WHERE event_type = 'policy_version.created'"
    ).fetchone()
    assert events["n"] == 2


def test_versions_bad_body(client: TestClient, zone: dict[str, Any]) -> None:
    policy = create_policy(client, zone["id"])
    url = f"/v1/zones/{zone['id']}/policies/{policy['id']}/versions"
    for body in ({}, {"content": ALLOW, "name": "x"}, {"content": None}):
        response = client.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_body"


def test_concurrent_new_versions_have_no_gaps_or_duplicates(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    policy = create_policy(client, z)
    url = f"/v1/zones/{z}/policies/{policy['id']}/versions"

    def post(i: int) -> int:
        response = client.post(url, json={"content": rego(f"c{i}")})
        assert response.status_code == 201, response.text
        return response.json()["version"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(post, range(16)))
    assert sorted(numbers) == list(range(2, 18))
    stored = db.execute(
        "SELECT version FROM policy_versions WHERE policy_id = %s ORDER BY version",
        (policy["id"],),
    ).fetchall()
    assert [r["version"] for r in stored] == list(range(1, 18))


def test_versions_are_immutable_in_the_database(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    policy = create_policy(client, zone["id"])
    version_id = policy["version"]["id"]
    with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
        db.execute("UPDATE policy_versions SET content = 'x' WHERE id = %s", (version_id,))
    with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
        db.execute("DELETE FROM policy_versions WHERE id = %s", (version_id,))
    row = db.execute("SELECT content FROM policy_versions WHERE id = %s", (version_id,)).fetchone()
    assert row["content"] == ALLOW


def test_archive_is_soft_and_audited(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    policy = create_policy(client, z)
    response = client.delete(f"/v1/zones/{z}/policies/{policy['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/v1/zones/{z}/policies/{policy['id']}").status_code == 404
    assert client.delete(f"/v1/zones/{z}/policies/{policy['id']}").status_code == 404
    row = db.execute("SELECT archived_at FROM policies WHERE id = %s", (policy["id"],)).fetchone()
    assert row["archived_at"] is not None
    versions = db.execute(
        "SELECT count(*) AS n FROM policy_versions WHERE policy_id = %s", (policy["id"],)
    ).fetchone()
    assert versions["n"] == 1
    event = db.execute(
        "SELECT metadata_json FROM audit_events WHERE event_type = 'policy.archived'"
    ).fetchone()
    assert event["metadata_json"]["policy_id"] == policy["id"]


def test_zone_token_manages_its_zone_only(
    client: TestClient, zone: dict[str, Any], make_zone: Any, zone_token: Any
) -> None:
    other = make_zone()
    headers = bearer(zone_token(zone["id"]))
    body = {"name": "mine", "content": ALLOW}
    response = client.post(f"/v1/zones/{zone['id']}/policies", json=body, headers=headers)
    assert response.status_code == 201
    assert response.json()["created_by"] != create_policy(client, zone["id"])["created_by"]
    response = client.post(f"/v1/zones/{other['id']}/policies", json=body, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error": "admin_token_zone_mismatch"}
