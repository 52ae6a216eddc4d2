"""Helpers for the policy, policy-set and decision tests: create through the API."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar.testing import TestClient

ALLOW = "package caracal.authz\n\nimport rego.v1\n\ndefault result := true\n"
DENY = "package caracal.authz\n\nimport rego.v1\n\ndefault result := false\n"
# Allows when input.subject.roles contains "admin", denies otherwise.
ADMIN_ONLY = (
    "package caracal.authz\n\nimport rego.v1\n\n"
    'default result := {"allow": false, "reasons": ["not_admin"]}\n\n'
    'result := {"allow": true, "reasons": ["admin"]} if "admin" in input.subject.roles\n'
)


def sha(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes (computed here, not by the code under test)."""
    return hashlib.sha256(text.encode()).hexdigest()


def rego(marker: str, allow: bool = True) -> str:
    """A distinct valid policy: ``marker`` is a string rule, ``result`` a constant."""
    value = "true" if allow else "false"
    return f'package caracal.authz\n\nmarker := "{marker}"\n\nresult := {value}\n'


def create_policy(
    client: TestClient, zone_id: str, content: str = ALLOW, **fields: Any
) -> dict[str, Any]:
    """POST …/policies; the 201 body."""
    body = {"name": fields.pop("name", "policy"), "content": content, **fields}
    response = client.post(f"/v1/zones/{zone_id}/policies", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def add_version(client: TestClient, zone_id: str, policy_id: str, content: str) -> dict[str, Any]:
    """POST …/policies/{id}/versions; the 201 body."""
    response = client.post(
        f"/v1/zones/{zone_id}/policies/{policy_id}/versions", json={"content": content}
    )
    assert response.status_code == 201, response.text
    return response.json()


def create_set(client: TestClient, zone_id: str, name: str = "set") -> dict[str, Any]:
    """POST …/policy-sets; the 201 body."""
    response = client.post(f"/v1/zones/{zone_id}/policy-sets", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def create_set_version(
    client: TestClient, zone_id: str, set_id: str, version_ids: list[str]
) -> dict[str, Any]:
    """POST …/policy-sets/{id}/versions; the 201 body."""
    response = client.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": v} for v in version_ids]},
    )
    assert response.status_code == 201, response.text
    return response.json()


def activate(
    client: TestClient,
    zone_id: str,
    set_id: str,
    version_id: str,
    shadow_version_id: str | None = None,
) -> dict[str, Any]:
    """POST …/policy-sets/{id}/activate; the 202 body."""
    body: dict[str, Any] = {"version_id": version_id}
    if shadow_version_id is not None:
        body["shadow_version_id"] = shadow_version_id
    response = client.post(f"/v1/zones/{zone_id}/policy-sets/{set_id}/activate", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def active_set(client: TestClient, zone_id: str, *contents: str) -> dict[str, Any]:
    """Create one policy per content, a set with one version of them all, activate it.

    Returns ``{"set": …, "version": …, "policies": […], "activation": …}``.
    """
    policies = [create_policy(client, zone_id, c, name=f"p{i}") for i, c in enumerate(contents)]
    pset = create_set(client, zone_id)
    version = create_set_version(
        client, zone_id, pset["id"], [p["version"]["id"] for p in policies]
    )
    activation = activate(client, zone_id, pset["id"], version["id"])
    return {"set": pset, "version": version, "policies": policies, "activation": activation}
