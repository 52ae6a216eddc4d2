"""Zones: the five routes, defaults, slugs, soft delete, audit rows and key material."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from controlplane.keys import crypto
from tests.conftest import TEST_KEK


def test_create_applies_defaults_and_reads_back(client: TestClient) -> None:
    response = client.post("/v1/zones", json={"name": "Production EU"})
    assert response.status_code == 201, response.text
    zone = response.json()
    assert set(zone) == {
        "id", "org_id", "name", "slug", "dcr_enabled", "pkce_required", "login_flow",
        "created_at", "updated_at",
    }  # fmt: skip
    assert zone["org_id"] == "default"
    assert zone["slug"] == "production-eu"
    assert zone["dcr_enabled"] is False
    assert zone["pkce_required"] is True
    assert zone["login_flow"] == "default"
    assert zone["created_at"].endswith("Z")
    assert client.get(f"/v1/zones/{zone['id']}").json() == zone


def test_create_with_every_field(client: TestClient) -> None:
    body = {
        "name": "Staging",
        "org_id": "acme",
        "slug": "stage-1",
        "dcr_enabled": True,
        "pkce_required": False,
        "login_flow": "passwordless",
    }
    zone = client.post("/v1/zones", json=body).json()
    assert {k: zone[k] for k in body} == body


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("  Hello, World!! ", "hello-world"),
        ("ACME_Corp 2", "acme-corp-2"),
        ("Zürich Ops", "z-rich-ops"),
        ("a--b", "a-b"),
    ],
)
def test_slug_is_derived_from_the_name(client: TestClient, name: str, slug: str) -> None:
    assert client.post("/v1/zones", json={"name": name}).json()["slug"] == slug


def test_a_name_without_letters_or_digits_needs_a_slug(client: TestClient) -> None:
    response = client.post("/v1/zones", json={"name": "!!!"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_zone"


def test_taken_slug_is_invalid_zone_and_leaves_nothing_behind(client: TestClient, db: Any) -> None:
    client.post("/v1/zones", json={"name": "Prod"})
    zones_before = db.execute("SELECT count(*) AS n FROM zones").fetchone()["n"]
    events_before = db.execute("SELECT count(*) AS n FROM audit_events").fetchone()["n"]
    for body in ({"name": "Prod"}, {"name": "Other", "slug": "prod"}):
        response = client.post("/v1/zones", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_zone"
    assert db.execute("SELECT count(*) AS n FROM zones").fetchone()["n"] == zones_before
    assert db.execute("SELECT count(*) AS n FROM zone_deks").fetchone()["n"] == zones_before
    assert db.execute("SELECT count(*) AS n FROM audit_events").fetchone()["n"] == events_before


def test_archived_zone_slug_can_be_taken_again(client: TestClient) -> None:
    first = client.post("/v1/zones", json={"name": "Reuse"}).json()
    assert client.delete(f"/v1/zones/{first['id']}").status_code == 204
    second = client.post("/v1/zones", json={"name": "Reuse"})
    assert second.status_code == 201
    assert second.json()["slug"] == "reuse"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, []),
        ({"name": ""}, ["name"]),
        ({"name": 5}, ["name"]),
        ({"name": "x", "org_id": ""}, ["org_id"]),
        ({"name": "x", "slug": "Bad Slug"}, ["slug"]),
        ({"name": "x", "slug": "trailing-newline\n"}, ["slug"]),
        ({"name": "x", "slug": "s" * 201}, ["slug"]),
        ({"name": "x", "dcr_enabled": "yes"}, ["dcr_enabled"]),
        ({"name": "x", "color": "red"}, ["color"]),
        ({"name": None}, ["name"]),
    ],
)
def test_create_validation(client: TestClient, body: dict[str, Any], path: list[Any]) -> None:
    response = client.post("/v1/zones", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "invalid_body"
    assert payload["issues"][0]["path"] == path
    assert payload["issues"][0]["message"]


def test_slugs_are_at_most_200_characters(client: TestClient) -> None:
    longest = client.post("/v1/zones", json={"name": "x", "slug": "s" * 200})
    assert longest.status_code == 201, longest.text
    # a derived slug is cut to 200 characters (and never ends in "-")
    derived = client.post("/v1/zones", json={"name": "Long " * 600})
    assert derived.status_code == 201, derived.text
    slug = derived.json()["slug"]
    assert len(slug) <= 200 and slug.startswith("long-long") and not slug.endswith("-")


def test_a_nul_character_in_the_zone_id_is_zone_not_found(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/zones/a%00b"),
        ("PATCH", "/v1/zones/a%00b"),
        ("DELETE", "/v1/zones/%00"),
        ("GET", "/v1/zones/a%00b/applications"),
        ("GET", "/v1/zones/a%00b/sessions/s"),
    ]:
        response = client.request(method, path, json={"name": "x"} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "zone_not_found"


def test_list_shows_active_zones_only(client: TestClient, make_zone: Any) -> None:
    kept, archived = make_zone(), make_zone()
    client.delete(f"/v1/zones/{archived['id']}")
    ids = [zone["id"] for zone in client.get("/v1/zones").json()]
    assert kept["id"] in ids
    assert archived["id"] not in ids


def test_patch_updates_fields_and_updated_at(client: TestClient, zone: dict[str, Any]) -> None:
    response = client.patch(
        f"/v1/zones/{zone['id']}", json={"name": "Renamed", "dcr_enabled": True}
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Renamed"
    assert updated["dcr_enabled"] is True
    assert updated["slug"] == zone["slug"]  # the slug is not re-derived
    assert updated["updated_at"] > zone["updated_at"]
    assert updated["created_at"] == zone["created_at"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "no_fields"),
        ({"unknown": 1}, 400, "invalid_body"),
        ({"name": ""}, 400, "invalid_body"),
        ({"slug": "UPPER"}, 400, "invalid_body"),
        ({"slug": "ok\n"}, 400, "invalid_body"),
        ({"slug": "s" * 201}, 400, "invalid_body"),
        ({"name": None}, 400, "invalid_body"),
    ],
)
def test_patch_errors(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    response = client.patch(f"/v1/zones/{zone['id']}", json=body)
    assert response.status_code == status
    assert response.json()["error"] == code


def test_patch_to_a_taken_slug_is_invalid_zone(client: TestClient, make_zone: Any) -> None:
    first, second = make_zone(), make_zone()
    response = client.patch(f"/v1/zones/{second['id']}", json={"slug": first["slug"]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_zone"
    assert client.get(f"/v1/zones/{second['id']}").json()["slug"] == second["slug"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_and_archived_zones_are_404(
    client: TestClient, zone: dict[str, Any], method: str
) -> None:
    client.delete(f"/v1/zones/{zone['id']}")
    for zone_id in ("no-such-zone", zone["id"]):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        response = getattr(client, method)(f"/v1/zones/{zone_id}", **kwargs)
        assert response.status_code == 404
        assert response.json() == {"error": "zone_not_found"}


def test_delete_archives_without_removing(
    client: TestClient, zone: dict[str, Any], db: Any
) -> None:
    assert client.delete(f"/v1/zones/{zone['id']}").status_code == 204
    row = db.execute("SELECT archived_at FROM zones WHERE id = %s", (zone["id"],)).fetchone()
    assert row["archived_at"] is not None


def test_every_change_writes_one_audit_event(client: TestClient, db: Any) -> None:
    response = client.post("/v1/zones", json={"name": "Audited"}, headers={"X-Request-Id": "r-1"})
    zone_id = response.json()["id"]
    client.patch(
        f"/v1/zones/{zone_id}", json={"login_flow": "sso"}, headers={"X-Request-Id": "r-2"}
    )
    client.delete(f"/v1/zones/{zone_id}", headers={"X-Request-Id": "r-3"})
    rows = db.execute(
        "SELECT event_type, request_id, actor_id, decision, metadata_json FROM audit_events"
        " WHERE zone_id = %s ORDER BY occurred_at, id",
        (zone_id,),
    ).fetchall()
    assert [(r["event_type"], r["request_id"]) for r in rows] == [
        ("zone.created", "r-1"),
        ("zone.updated", "r-2"),
        ("zone.archived", "r-3"),
    ]
    assert all(r["decision"] is None and r["actor_id"] for r in rows)
    assert rows[0]["metadata_json"]["fields"]["slug"] == "audited"  # derived, not null
    assert rows[1]["metadata_json"]["changes"] == {"login_flow": "sso"}


def test_each_zone_gets_a_dek_and_a_signing_key(zone: dict[str, Any], db: Any) -> None:
    dek_row = db.execute(
        "SELECT kek_id, wrapped_dek FROM zone_deks WHERE zone_id = %s", (zone["id"],)
    ).fetchone()
    assert dek_row["kek_id"] == TEST_KEK.key_id
    dek = crypto.unwrap_dek(TEST_KEK, bytes(dek_row["wrapped_dek"]), zone["id"])
    assert len(dek) == 32
    key = db.execute(
        "SELECT kid, public_key, sealed_private FROM zone_signing_keys"
        " WHERE zone_id = %s AND retired_at IS NULL",
        (zone["id"],),
    ).fetchone()
    private = crypto.unseal_signing_key(dek, bytes(key["sealed_private"]), zone["id"], key["kid"])
    assert len(private) == 32
    assert key["kid"] == crypto.key_id_for(bytes(key["public_key"]))
