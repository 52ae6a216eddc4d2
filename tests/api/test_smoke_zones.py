from typing import Any

from litestar.testing import TestClient


def test_create_and_read_zone(client: TestClient) -> None:
    r = client.post("/v1/zones", json={"name": "Production EU"})
    assert r.status_code == 201, r.text
    zone: dict[str, Any] = r.json()
    assert zone["slug"] == "production-eu"
    assert zone["org_id"] == "default"
    r = client.get(f"/v1/zones/{zone['id']}")
    assert r.status_code == 200
    assert r.json() == zone
    assert r.headers["x-request-id"]
