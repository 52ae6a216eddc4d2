"""Public JWKS endpoints: current and still-valid previous keys, Cache-Control, no auth."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import TestClient

from controlplane.db.pool import Database
from controlplane.keys.zone_keys import reseal_signing_key
from tests.conftest import TEST_KEK


def _reseal(database_url: str, zone_id: str, overlap: int) -> str:
    async def run() -> str:
        db = Database(database_url, 1, 1)
        await db.open()
        try:
            async with db.transaction() as conn:
                return await reseal_signing_key(conn, TEST_KEK, zone_id, overlap)
        finally:
            await db.close()

    return asyncio.run(run())


def test_zone_jwks_is_public_and_cacheable(client: TestClient, zone: dict[str, Any]) -> None:
    client.headers.pop("Authorization")
    response = client.get(f"/v1/zones/{zone['id']}/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA" and key["use"] == "sig"
    assert key["kid"] and key["x"]
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}


def test_unknown_zone_jwks_is_404(client: TestClient) -> None:
    client.headers.pop("Authorization")
    response = client.get("/v1/zones/nope/jwks.json")
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}


def test_global_jwks_lists_every_active_zone(client: TestClient, make_zone: Any) -> None:
    first, second, archived = make_zone(), make_zone(), make_zone()
    client.delete(f"/v1/zones/{archived['id']}")
    client.headers.pop("Authorization")
    response = client.get("/.well-known/jwks.json")
    assert response.headers["cache-control"].startswith("public")
    kids = {k["kid"] for k in response.json()["keys"]}
    for zone in (first, second):
        zone_kids = {
            k["kid"] for k in client.get(f"/v1/zones/{zone['id']}/jwks.json").json()["keys"]
        }
        assert zone_kids <= kids
    assert len(kids) == 2


def test_resealed_key_stays_listed_for_the_overlap_only(
    client: TestClient, zone: dict[str, Any], database_url: str, db: Any
) -> None:
    url = f"/v1/zones/{zone['id']}/jwks.json"
    (old,) = client.get(url).json()["keys"]
    new_kid = _reseal(database_url, zone["id"], 3600)
    kids = [k["kid"] for k in client.get(url).json()["keys"]]
    assert kids == [new_kid, old["kid"]]
    db.execute(
        "UPDATE zone_signing_keys SET expires_at = now() - interval '1 second'"
        " WHERE zone_id = %s AND kid = %s",
        (zone["id"], old["kid"]),
    )
    assert [k["kid"] for k in client.get(url).json()["keys"]] == [new_kid]
