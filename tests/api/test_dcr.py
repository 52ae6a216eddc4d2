"""Dynamic Client Registration: dcr_enabled, the per-zone rate limit and the active-app cap."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from litestar.testing import TestClient
from uuid6 import uuid7

from controlplane.app import create_app
from controlplane.registry.dcr_limits import MAX_ACTIVE_DCR_APPLICATIONS
from tests.conftest import ADMIN_TOKEN, TEST_KEK, make_settings

APP_KEYS = {
    "id", "zone_id", "name", "registration_method", "credential_type", "traits", "consent",
    "created_at",
}  # fmt: skip


def register_url(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/applications/register"


@contextmanager
def app_client(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """Another process-like instance of the service on the same database."""
    settings = make_settings(database_url, tmp_path, **overrides)
    with TestClient(create_app(settings, kek=TEST_KEK), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def insert_dcr_apps(db: psycopg.Connection[Any], zone_id: str, count: int, **columns: Any) -> None:
    extra = "".join(f", {name}" for name in columns)
    values = "".join(", %s" for _ in columns)
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO applications (zone_id, id, name, registration_method, credential_type"
            f"{extra}) VALUES (%s, %s, 'preloaded', 'dcr', 'public'{values})",
            [(zone_id, uuid7(), *columns.values()) for _ in range(count)],
        )


def test_registration_needs_dcr_enabled(client: TestClient, make_zone: Any, db: Any) -> None:
    zone = make_zone()
    response = client.post(register_url(zone["id"]), json={"name": "x"})
    assert response.status_code == 403
    assert response.json()["error"] == "dcr_disabled"
    assert db.execute("SELECT count(*) AS n FROM applications").fetchone()["n"] == 0


def test_register_applies_the_defaults(client: TestClient, make_zone: Any, db: Any) -> None:
    zone = make_zone(dcr_enabled=True)
    response = client.post(register_url(zone["id"]), json={"name": "Agent"})
    assert response.status_code == 201, response.text
    app = response.json()
    assert set(app) == APP_KEYS
    assert app["registration_method"] == "dcr"
    assert app["credential_type"] == "public"
    assert app["traits"] == []
    assert app["consent"] is False
    assert client.get(f"/v1/zones/{zone['id']}/applications/{app['id']}").json() == app
    event = db.execute(
        "SELECT * FROM audit_events WHERE event_type = 'application.created'"
    ).fetchone()
    assert event["metadata_json"]["registration_method"] == "dcr"


def test_register_with_every_field(client: TestClient, make_zone: Any, db: Any) -> None:
    zone = make_zone(dcr_enabled=True)
    body = {
        "name": "Agent",
        "credential_type": "password",
        "client_secret": "dcr-given-secret",
        "traits": ["mcp"],
        "expires_in": 3600,
    }
    before = datetime.now(UTC)
    response = client.post(register_url(zone["id"]), json=body)
    assert response.status_code == 201, response.text
    app = response.json()
    assert set(app) == APP_KEYS | {"expires_at"}
    assert "dcr-given-secret" not in response.text
    assert app["traits"] == ["mcp"] and app["credential_type"] == "password"
    expires_at = datetime.fromisoformat(app["expires_at"])
    assert app["expires_at"].endswith("Z")
    assert before + timedelta(seconds=3590) < expires_at < before + timedelta(seconds=3610)
    row = db.execute("SELECT * FROM applications WHERE id = %s", (app["id"],)).fetchone()
    assert row["client_secret_hash"].startswith("$argon2id$")


def test_register_a_token_client_generates_its_secret(client: TestClient, make_zone: Any) -> None:
    zone = make_zone(dcr_enabled=True)
    response = client.post(register_url(zone["id"]), json={"name": "A", "credential_type": "token"})
    assert response.status_code == 201
    assert response.json()["client_secret"].startswith("cs_")


def test_register_rejects_invalid_bodies(client: TestClient, make_zone: Any) -> None:
    zone = make_zone(dcr_enabled=True)
    for body, path in (
        ({"name": "a", "registration_method": "dcr"}, ["registration_method"]),
        ({"name": "a", "consent": True}, ["consent"]),
        ({"name": "a", "expires_in": 0}, ["expires_in"]),
        ({"name": "a", "expires_in": 1.5}, ["expires_in"]),
        ({"name": "a", "credential_type": "magic"}, ["credential_type"]),
        ({}, []),
    ):
        response = client.post(register_url(zone["id"]), json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_body"
        assert response.json()["issues"][0]["path"] == path


def test_an_expired_registration_counts_as_archived(
    client: TestClient, make_zone: Any, db: Any
) -> None:
    zone = make_zone(dcr_enabled=True)
    app = client.post(register_url(zone["id"]), json={"name": "A", "expires_in": 60}).json()
    url = f"/v1/zones/{zone['id']}/applications/{app['id']}"
    assert client.get(url).status_code == 200
    db.execute(
        "UPDATE applications SET expires_at = now() - interval '1 second' WHERE id = %s",
        (app["id"],),
    )
    assert client.get(url).json() == {"error": "application_not_found"}
    assert client.get(f"/v1/zones/{zone['id']}/applications").json() == []


def test_more_than_ten_requests_in_a_second_are_rate_limited(
    client: TestClient, make_zone: Any
) -> None:
    zone, other = make_zone(dcr_enabled=True), make_zone(dcr_enabled=True)
    started = time.monotonic()
    statuses = [
        client.post(register_url(zone["id"]), json={"name": f"a{i}"}).status_code for i in range(12)
    ]
    elapsed = time.monotonic() - started
    assert 429 in statuses
    if elapsed < 1:  # all twelve fell in one window: exactly ten got through
        assert statuses.count(201) == 10
    limited = client.post(register_url(zone["id"]), json={"name": "again"})
    if limited.status_code == 429:
        assert limited.json()["error"] == "dcr_rate_limit_exceeded"
    # the limit is per zone
    assert client.post(register_url(other["id"]), json={"name": "b"}).status_code == 201
    # and it is a window: a second later registrations pass again
    time.sleep(1.05)
    assert client.post(register_url(zone["id"]), json={"name": "later"}).status_code == 201


def test_the_rate_limit_is_shared_by_every_process(
    client: TestClient, make_zone: Any, database_url: str, tmp_path: Path
) -> None:
    zone = make_zone(dcr_enabled=True)
    with app_client(database_url, tmp_path) as second:
        started = time.monotonic()
        responses = [
            (client if i % 2 else second).post(register_url(zone["id"]), json={"name": f"a{i}"})
            for i in range(14)
        ]
        elapsed = time.monotonic() - started
    statuses = [r.status_code for r in responses]
    assert 429 in statuses
    if elapsed < 1:
        assert statuses.count(201) == 10
    assert {r.json()["error"] for r in responses if r.status_code == 429} == {
        "dcr_rate_limit_exceeded"
    }


def test_the_active_dcr_cap_holds_under_concurrent_registrations(
    make_zone: Any, db: Any, database_url: str, tmp_path: Path
) -> None:
    zone = make_zone(dcr_enabled=True)
    insert_dcr_apps(db, zone["id"], MAX_ACTIVE_DCR_APPLICATIONS - 5)
    with app_client(database_url, tmp_path, pool_max_size=24, dcr_rate_limit=1000) as client:

        def register(i: int) -> Any:
            return client.post(register_url(zone["id"]), json={"name": f"racer{i}"})

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(register, range(20)))
    outcome = Counter(
        (r.status_code, r.json().get("error") if r.status_code != 201 else None) for r in responses
    )
    assert outcome == {(201, None): 5, (429, "dcr_limit_exceeded"): 15}, outcome
    active = db.execute(
        "SELECT count(*) AS n FROM active_applications"
        " WHERE zone_id = %s AND registration_method = 'dcr'",
        (zone["id"],),
    ).fetchone()["n"]
    assert active == MAX_ACTIVE_DCR_APPLICATIONS


def test_the_cap_counts_only_active_dcr_applications(
    client: TestClient, make_zone: Any, db: Any
) -> None:
    zone = make_zone(dcr_enabled=True)
    url = register_url(zone["id"])
    insert_dcr_apps(db, zone["id"], MAX_ACTIVE_DCR_APPLICATIONS - 2)
    insert_dcr_apps(db, zone["id"], 3, archived_at=datetime.now(UTC))
    insert_dcr_apps(db, zone["id"], 3, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    managed = {"name": "m", "registration_method": "managed"}
    assert client.post(f"/v1/zones/{zone['id']}/applications", json=managed).status_code == 201
    assert client.post(url, json={"name": "one"}).status_code == 201
    # the last slot is taken through the managed route with registration_method "dcr"
    as_dcr = {"name": "m", "registration_method": "dcr"}
    assert client.post(f"/v1/zones/{zone['id']}/applications", json=as_dcr).status_code == 201
    response = client.post(url, json={"name": "over"})
    assert response.status_code == 429
    assert response.json()["error"] == "dcr_limit_exceeded"
    response = client.post(f"/v1/zones/{zone['id']}/applications", json=as_dcr)
    assert response.status_code == 429
    assert response.json()["error"] == "dcr_limit_exceeded"
    # archiving one frees a slot
    some = client.get(f"/v1/zones/{zone['id']}/applications").json()[-1]
    assert client.delete(f"/v1/zones/{zone['id']}/applications/{some['id']}").status_code == 204
    assert client.post(url, json={"name": "freed"}).status_code == 201
