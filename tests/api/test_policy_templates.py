"""Policy templates: the public catalogue, and every template works as a real policy."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from controlplane.pdp.templates import TEMPLATE_IDS
from tests.api.policy_helpers import activate, create_set, create_set_version

CONTRACT_IDS = [
    "role-based", "attribute-based", "delegation", "baseline-scopes",
    "baseline-resource-constraints", "baseline-delegation-constraints",
    "baseline-session-state", "baseline-step-up-triggers", "baseline-rate-limits",
]  # fmt: skip


def test_catalogue_is_public_and_complete(client: TestClient) -> None:
    client.headers.pop("Authorization", None)
    response = client.get("/v1/policy-templates")
    assert response.status_code == 200, response.text
    templates = response.json()
    assert [t["id"] for t in templates] == CONTRACT_IDS == list(TEMPLATE_IDS)
    for template in templates:
        assert set(template) == {"id", "name", "description", "content"}
        assert template["name"] and template["description"]
        assert "package caracal.authz" in template["content"]
    names = {t["id"]: t["name"] for t in templates}
    assert names["role-based"] == "Role-Based Access Control"
    response = client.get("/v1/policy-templates", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 200


def test_every_template_is_accepted_activated_and_decides(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    templates = client.get("/v1/policy-templates").json()
    version_ids = []
    for template in templates:
        response = client.post(
            f"/v1/zones/{z}/policies",
            json={"name": template["name"], "content": template["content"]},
        )
        assert response.status_code == 201, (template["id"], response.text)
        version_ids.append(response.json()["version"]["id"])
    pset = create_set(client, z)
    activate(client, z, pset["id"], create_set_version(client, z, pset["id"], version_ids)["id"])
    role_only = create_set(client, z, "role-based only")
    role_version = create_set_version(client, z, role_only["id"], [version_ids[0]])
    activate(client, z, role_only["id"], role_version["id"])
    base = {
        "subject": {"id": "u1", "type": "user", "roles": ["viewer"]},
        "resource": {"id": "r1", "identifier": "resource://orders", "scopes": ["orders:read"]},
    }
    allowed = client.post(
        f"/v1/zones/{z}/decisions",
        json={"input": {**base, "requested_scopes": ["orders:read"]}},
    ).json()
    assert allowed["decision"] == "allow", allowed
    assert allowed["granted_scopes"] == ["orders:read"]
    denied = client.post(
        f"/v1/zones/{z}/decisions",
        json={"input": {**base, "requested_scopes": ["orders:delete"]}},
    ).json()
    assert denied["decision"] == "deny", denied
