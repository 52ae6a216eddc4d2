"""The decision route's token cache against a real database: a revoked token stops working
at once, whether revoked through the API or by another process (NOTIFY)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from litestar.testing import TestClient

from tests.api.policy_helpers import ALLOW, active_set
from tests.conftest import bearer


def _decide(client: TestClient, zone_id: str, token_string: str) -> int:
    return client.post(
        f"/v1/zones/{zone_id}/decisions", json={"input": {}}, headers=bearer(token_string)
    ).status_code


def test_revocation_through_the_api_is_immediate(client: TestClient, zone: dict[str, Any]) -> None:
    active_set(client, zone["id"], ALLOW)
    created = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": zone["id"]})
    body = created.json()
    assert _decide(client, zone["id"], body["token"]) == 200
    assert _decide(client, zone["id"], body["token"]) == 200  # served from the cache
    assert client.delete(f"/v1/admin-tokens/{body['id']}").status_code == 204
    assert _decide(client, zone["id"], body["token"]) == 401


def test_revocation_elsewhere_reaches_the_cache_through_notify(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    active_set(client, zone["id"], ALLOW)
    body = client.post("/v1/admin-tokens", json={"scope": "global"}).json()
    assert _decide(client, zone["id"], body["token"]) == 200
    # Another process (here: plain SQL) revokes the token.
    db.execute("UPDATE admin_tokens SET revoked_at = now() WHERE id = %s", (body["id"],))
    started = time.monotonic()
    while _decide(client, zone["id"], body["token"]) != 401:
        # well under the 1 s TTL: the trigger's NOTIFY evicted it
        assert time.monotonic() - started < 0.5, "revocation did not arrive by NOTIFY"
        time.sleep(0.005)
