"""The "referenced by an active policy" check behind 409 app_referenced_by_active_policy.

The referenced paths go through the policies API: an application is referenced while a
policy version of the zone's active or shadow set version mentions its id.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.rows import dict_row
from uuid6 import uuid7

from controlplane.registry.applications import application_referenced_by_active_policy


def referenced(
    database_url: str, zone_id: str, app_id: UUID, search_path: str | None = None
) -> bool:
    async def run() -> bool:
        conn = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
        async with conn:
            if search_path is not None:
                await conn.execute(f"SET search_path = {search_path}")
            return await application_referenced_by_active_policy(conn, zone_id, app_id)

    return asyncio.run(run())


def test_not_referenced_without_an_active_policy_set(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    assert referenced(database_url, zone["id"], uuid7()) is False


def _create_app(client: TestClient, zone_id: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/zones/{zone_id}/applications",
        json={"name": "agent", "registration_method": "managed", "credential_type": "token"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _set_version(client: TestClient, zone_id: str, contents: list[str]) -> tuple[str, str]:
    """A new policy set with one version of the policies ``contents``: (set id, version id)."""
    base = f"/v1/zones/{zone_id}"
    version_ids = []
    for content in contents:
        created = client.post(f"{base}/policies", json={"name": "p", "content": content})
        assert created.status_code == 201, created.text
        version_ids.append(created.json()["version"]["id"])
    policy_set = client.post(f"{base}/policy-sets", json={"name": "s"}).json()
    version = client.post(
        f"{base}/policy-sets/{policy_set['id']}/versions",
        json={"manifest": [{"policy_version_id": v} for v in version_ids]},
    )
    assert version.status_code == 201, version.text
    return policy_set["id"], version.json()["id"]


def _activate(client: TestClient, zone_id: str, contents: list[str], shadow: list[str]) -> None:
    """Activate a set of policies (``contents``), optionally with a shadow set version."""
    set_id, version_id = _set_version(client, zone_id, contents)
    body: dict[str, Any] = {"version_id": version_id}
    if shadow:
        body["shadow_version_id"] = _set_version(client, zone_id, shadow)[1]
    response = client.post(f"/v1/zones/{zone_id}/policy-sets/{set_id}/activate", json=body)
    assert response.status_code == 202, response.text


def _rego(app_id: str | None) -> str:
    condition = f'input.application.id == "{app_id}"' if app_id else "true"
    return f"package caracal.authz\n\nresult := {condition}\n"


@pytest.mark.parametrize("where", ["active", "shadow"])
def test_downgrade_to_public_is_refused_while_an_active_policy_references_the_app(
    client: TestClient, zone: dict[str, Any], where: str
) -> None:
    app = _create_app(client, zone["id"])
    other = _create_app(client, zone["id"])
    uppercase = app["id"].upper()
    if where == "active":
        _activate(client, zone["id"], [_rego(None), _rego(uppercase)], [])
    else:
        _activate(client, zone["id"], [_rego(None)], [_rego(uppercase)])
    url = f"/v1/zones/{zone['id']}/applications"
    response = client.patch(f"{url}/{app['id']}", json={"credential_type": "public"})
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "app_referenced_by_active_policy"
    assert client.get(f"{url}/{app['id']}").json()["credential_type"] == "token"
    # other changes to the referenced app are fine, and an unreferenced app can downgrade
    assert client.patch(f"{url}/{app['id']}", json={"name": "x"}).status_code == 200
    response = client.patch(f"{url}/{other['id']}", json={"credential_type": "public"})
    assert response.status_code == 200, response.text


def test_downgrade_waits_for_an_activation_in_flight_and_sees_it(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    z = zone["id"]
    app = _create_app(client, z)
    _, version_id = _set_version(client, z, [_rego(app["id"])])
    locked, done = threading.Event(), threading.Event()

    def activation_in_flight() -> None:
        # what an activation's transaction does: lock the zone row, switch the active version
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "SELECT 1 FROM zones WHERE id = %s AND archived_at IS NULL FOR NO KEY UPDATE",
                (z,),
            )
            conn.execute(
                "INSERT INTO zone_policy_state (zone_id, active_version_id) VALUES (%s, %s)",
                (z, version_id),
            )
            locked.set()
            time.sleep(0.5)
            done.set()
        # leaving the block commits

    thread = threading.Thread(target=activation_in_flight)
    thread.start()
    try:
        assert locked.wait(10)
        response = client.patch(
            f"/v1/zones/{z}/applications/{app['id']}", json={"credential_type": "public"}
        )
    finally:
        thread.join()
    assert done.is_set()  # the PATCH was answered only after the activation committed
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "app_referenced_by_active_policy"


def test_a_later_activation_without_the_reference_frees_the_app(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    app = _create_app(client, zone["id"])
    _activate(client, zone["id"], [_rego(app["id"])], [])
    assert referenced(database_url, zone["id"], UUID(app["id"])) is True
    # only the zone's current active/shadow version counts, not the history
    _activate(client, zone["id"], [_rego(None)], [])
    assert referenced(database_url, zone["id"], UUID(app["id"])) is False
    response = client.patch(
        f"/v1/zones/{zone['id']}/applications/{app['id']}", json={"credential_type": "public"}
    )
    assert response.status_code == 200, response.text


def test_another_zones_policies_do_not_count(
    client: TestClient, zone: dict[str, Any], make_zone: Any, database_url: str
) -> None:
    app = _create_app(client, zone["id"])
    _activate(client, make_zone()["id"], [_rego(app["id"])], [])
    assert referenced(database_url, zone["id"], UUID(app["id"])) is False
