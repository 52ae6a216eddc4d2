"""POST /v1/local/bootstrap: absent unless enabled, one transaction, idempotent, force."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient

from controlplane.app import create_app
from tests.conftest import TEST_KEK, bearer, make_settings

URL = "/v1/local/bootstrap"


@pytest.fixture
def local(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A client of an app with the bootstrap route enabled."""
    settings = make_settings(database_url, tmp_path, local_bootstrap_enabled=True)
    with TestClient(create_app(settings, kek=TEST_KEK), raise_server_exceptions=False) as client:
        from tests.conftest import ADMIN_TOKEN

        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def test_route_is_absent_unless_enabled(client: TestClient) -> None:
    response = client.post(URL, json={})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


def test_first_call_creates_everything_and_returns_the_secret_once(
    local: TestClient, db: Any
) -> None:
    response = local.post(URL)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["zone_id"] == "zone1"
    assert body["app_id"] == body["application_id"]
    assert body["resource"] == "resource://example" and body["scope"] == "read"
    assert body["rotated"] is False and body["signing_key_resealed"] is False
    secret = body["app_client_secret"]
    assert secret

    zone = local.get("/v1/zones/zone1").json()
    assert zone["slug"] == "zone1"
    app = local.get(f"/v1/zones/zone1/applications/{body['app_id']}").json()
    assert app["credential_type"] == "token" and "client_secret" not in app
    stored = db.execute(
        "SELECT client_secret_hash FROM applications WHERE zone_id = 'zone1'"
    ).fetchone()["client_secret_hash"]
    assert PasswordHasher().verify(stored, secret)
    (resource,) = local.get("/v1/zones/zone1/resources").json()
    assert resource["identifier"] == "resource://example" and resource["scopes"] == ["read"]
    (policy,) = local.get("/v1/zones/zone1/policies").json()
    assert policy["name"] == "role-based"
    (policy_set,) = local.get("/v1/zones/zone1/policy-sets").json()
    assert policy_set["active_version_id"] is not None
    outbox = db.execute("SELECT id, topic FROM outbox WHERE zone_id = 'zone1'").fetchall()
    assert [row["topic"] for row in outbox] == ["caracal.policy.invalidate"]
    # one call, one audit event, naming everything it made
    (event,) = db.execute(
        "SELECT event_type, metadata_json FROM audit_events WHERE zone_id = 'zone1'"
    ).fetchall()
    assert event["event_type"] == "local.bootstrapped"
    created = event["metadata_json"]["created"]
    assert created["application_id"] == body["app_id"]
    assert created["resource_id"] == resource["id"]
    assert created["policy_id"] == policy["id"]
    assert created["policy_set_version_id"] == policy_set["active_version_id"]
    assert created["outbox_id"] == str(outbox[0]["id"])
    assert secret not in str(event)


def test_the_bootstrap_zone_decides_at_once(local: TestClient) -> None:
    app_id = local.post(URL).json()["app_id"]
    decision = local.post(
        "/v1/zones/zone1/decisions",
        json={
            "input": {
                "subject": {"id": "dev", "roles": ["viewer"]},
                "application": {"id": app_id},
                "resource": {"identifier": "resource://example", "scopes": ["read"]},
                "requested_scopes": ["read"],
            }
        },
    )
    assert decision.status_code == 200, decision.text
    assert decision.json()["decision"] == "allow"


def test_second_call_is_200_with_the_same_ids_and_no_secret(local: TestClient, db: Any) -> None:
    first = local.post(URL).json()
    counts = {
        table: db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
        for table in ("zones", "applications", "resources", "policies", "policy_sets")
    }
    second = local.post(URL, json={})
    assert second.status_code == 200
    body = second.json()
    assert "app_client_secret" not in body
    assert body["app_id"] == first["app_id"]
    assert body["rotated"] is False
    for table, count in counts.items():
        assert db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == count


def test_force_regenerates_the_secret_and_reseals_the_signing_key(
    local: TestClient, db: Any
) -> None:
    first = local.post(URL).json()
    kids_before = [k["kid"] for k in local.get("/v1/zones/zone1/jwks.json").json()["keys"]]
    response = local.post(URL, json={"force": True})
    assert response.status_code == 200
    body = response.json()
    assert body["rotated"] is True and body["signing_key_resealed"] is True
    assert body["app_client_secret"] and body["app_client_secret"] != first["app_client_secret"]
    assert body["app_id"] == first["app_id"]
    stored = db.execute(
        "SELECT client_secret_hash FROM applications WHERE zone_id = 'zone1'"
    ).fetchone()["client_secret_hash"]
    assert PasswordHasher().verify(stored, body["app_client_secret"])
    kids_after = [k["kid"] for k in local.get("/v1/zones/zone1/jwks.json").json()["keys"]]
    assert len(kids_after) == 2 and kids_after[1] == kids_before[0]  # old key still listed


def test_an_archived_application_or_resource_is_made_again(local: TestClient, db: Any) -> None:
    first = local.post(URL).json()
    (resource,) = local.get("/v1/zones/zone1/resources").json()
    assert local.delete(f"/v1/zones/zone1/applications/{first['app_id']}").status_code == 204
    assert local.delete(f"/v1/zones/zone1/resources/{resource['id']}").status_code == 204

    response = local.post(URL)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["app_id"] != first["app_id"] and body["app_id"] == body["application_id"]
    assert body["rotated"] is False
    app = local.get(f"/v1/zones/zone1/applications/{body['app_id']}")
    assert app.status_code == 200 and app.json()["credential_type"] == "token"
    stored = db.execute(
        "SELECT client_secret_hash FROM applications WHERE id = %s", (body["app_id"],)
    ).fetchone()["client_secret_hash"]
    assert PasswordHasher().verify(stored, body["app_client_secret"])  # the new app's secret
    (remade,) = local.get("/v1/zones/zone1/resources").json()
    assert remade["identifier"] == "resource://example" and remade["id"] != resource["id"]
    (event,) = db.execute(
        "SELECT metadata_json FROM audit_events WHERE event_type = 'local.bootstrap_repaired'"
    ).fetchall()
    assert event["metadata_json"]["remade"] == {
        "application_id": body["app_id"],
        "resource_id": remade["id"],
    }
    # and then it is stable again: same ids, no secret, no event
    again = local.post(URL).json()
    assert again["app_id"] == body["app_id"] and "app_client_secret" not in again
    count = "SELECT count(*) AS n FROM audit_events WHERE event_type LIKE 'local.%%'"
    assert db.execute(count).fetchone()["n"] == 2


def test_a_taken_slug_gets_a_suffix(local: TestClient) -> None:
    assert local.post("/v1/zones", json={"name": "zone1"}).json()["slug"] == "zone1"
    response = local.post(URL)
    assert response.status_code == 201, response.text
    slug = local.get("/v1/zones/zone1").json()["slug"]
    assert slug.startswith("zone1-") and len(slug) == len("zone1-") + 4


def test_a_zone_not_made_by_bootstrap_is_409(local: TestClient, db: Any) -> None:
    db.execute(
        "INSERT INTO zones (id, org_id, name, slug) VALUES ('zone1', 'default', 'Mine', 'mine')"
    )
    response = local.post(URL)
    assert response.status_code == 409
    assert response.json()["error"] == "zone_not_local_bootstrap"


def test_needs_a_global_token(local: TestClient) -> None:
    local.post(URL)
    token = local.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": "zone1"}).json()
    response = local.post(URL, headers=bearer(token["token"]))
    assert response.status_code == 403
    local.headers.pop("Authorization")
    assert local.post(URL).status_code == 401


def test_bad_body_is_invalid_body(local: TestClient) -> None:
    for body in ({"force": "yes"}, {"other": 1}, [1]):
        response = local.post(URL, json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_body"


def test_concurrent_first_calls_create_one_of_everything(local: TestClient, db: Any) -> None:
    statuses: list[int] = []

    def call() -> None:
        statuses.append(local.post(URL).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    for table in ("zones", "applications", "resources", "policies", "policy_sets"):
        assert db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 1
