"""Admin tokens over REST: create, list, revoke, expiry; only hashes are stored."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.conftest import bearer


def test_create_global_token_shows_it_once_and_it_works(client: TestClient, db: Any) -> None:
    response = client.post("/v1/admin-tokens", json={"scope": "global", "name": "ci"})
    assert response.status_code == 201
    created = response.json()
    assert re.fullmatch(r"cpk_[A-Za-z0-9_-]{43}", created["token"])
    assert created["scope"] == "global" and created["zone_id"] is None
    assert created["expires_at"] is None and created["name"] == "ci"
    assert client.get("/v1/zones", headers=bearer(created["token"])).status_code == 200
    stored = db.execute(
        "SELECT token_sha256 FROM admin_tokens WHERE id = %s", (created["id"],)
    ).fetchone()
    assert stored["token_sha256"] == hashlib.sha256(created["token"].encode()).hexdigest()
    listed = {t["id"]: t for t in client.get("/v1/admin-tokens").json()}
    assert "token" not in listed[created["id"]]
    assert listed[created["id"]]["last_used_at"] is not None
    assert listed[created["id"]]["revoked_at"] is None


def test_zone_token_requires_an_existing_zone(client: TestClient, zone: dict[str, Any]) -> None:
    created = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": zone["id"]})
    assert created.status_code == 201
    assert created.json()["zone_id"] == zone["id"]
    missing = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "zone_not_found"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"scope": "zone"}, ["zone_id"]),
        ({"scope": "global", "zone_id": "z"}, ["zone_id"]),
        ({"scope": "root"}, ["scope"]),
        ({"scope": "global", "expires_in": 59}, ["expires_in"]),
        ({"scope": "global", "expires_in": "1h"}, ["expires_in"]),
        ({"scope": "global", "token": "mine"}, ["token"]),
    ],
)
def test_create_validation(client: TestClient, body: dict[str, Any], path: list[Any]) -> None:
    response = client.post("/v1/admin-tokens", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


def test_revoked_token_answers_401(client: TestClient) -> None:
    created = client.post("/v1/admin-tokens", json={"scope": "global"}).json()
    assert client.delete(f"/v1/admin-tokens/{created['id']}").status_code == 204
    response = client.get("/v1/zones", headers=bearer(created["token"]))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_admin_token"}
    listed = {t["id"]: t for t in client.get("/v1/admin-tokens").json()}
    assert listed[created["id"]]["revoked_at"] is not None


def test_expired_token_answers_401(client: TestClient, db: Any) -> None:
    created = client.post("/v1/admin-tokens", json={"scope": "global", "expires_in": 60}).json()
    assert created["expires_at"] is not None
    assert client.get("/v1/zones", headers=bearer(created["token"])).status_code == 200
    db.execute(
        "UPDATE admin_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
        (created["id"],),
    )
    assert client.get("/v1/zones", headers=bearer(created["token"])).status_code == 401


@pytest.mark.parametrize("token_id", ["not-a-uuid", "01a20b22-4538-7cfd-85b4-713291138a95"])
def test_revoking_an_unknown_token_is_404(client: TestClient, token_id: str) -> None:
    response = client.delete(f"/v1/admin-tokens/{token_id}")
    assert response.status_code == 404
    assert response.json() == {"error": "admin_token_not_found"}


def test_token_changes_are_audited_without_the_token(client: TestClient, db: Any) -> None:
    created = client.post("/v1/admin-tokens", json={"scope": "global"}).json()
    client.delete(f"/v1/admin-tokens/{created['id']}")
    assert client.delete(f"/v1/admin-tokens/{created['id']}").status_code == 204  # no change
    rows = db.execute(
        "SELECT event_type, metadata_json::text AS meta, metadata_json FROM audit_events"
        " WHERE event_type LIKE 'admin_token.%' ORDER BY occurred_at"
    ).fetchall()
    assert [r["event_type"] for r in rows] == ["admin_token.created", "admin_token.revoked"]
    assert all(created["token"] not in r["meta"] for r in rows)
    # the id says which token: it is no secret (GET /v1/admin-tokens lists it)
    assert [r["metadata_json"]["token_id"] for r in rows] == [created["id"]] * 2


def test_env_admin_token_is_stored_as_a_hash_only(client: TestClient, db: Any) -> None:
    from tests.conftest import ADMIN_TOKEN

    rows = db.execute("SELECT name, scope, token_sha256 FROM admin_tokens").fetchall()
    env_rows = [r for r in rows if r["name"] == "env:CARACAL_ADMIN_TOKEN"]
    assert len(env_rows) == 1 and env_rows[0]["scope"] == "global"
    assert env_rows[0]["token_sha256"] == hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    assert all(ADMIN_TOKEN not in str(r) for r in rows)
