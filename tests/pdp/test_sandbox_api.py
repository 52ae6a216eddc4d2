"""A policy that would exhaust memory is refused by the API, which keeps serving."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.unit.pdp.test_sandbox import ALLOCATES_24_GB, HEADER


def test_the_api_answers_422_and_keeps_serving(client: TestClient, zone: dict[str, Any]) -> None:
    url = f"/v1/zones/{zone['id']}/policies"
    response = client.post(url, json={"name": "oom", "content": ALLOCATES_24_GB})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_rego"
    assert client.get("/health").status_code == 200
    assert (
        client.post(url, json={"name": "ok", "content": HEADER + "result := true\n"}).status_code
        == 201
    )
