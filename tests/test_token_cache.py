"""The short-lived token cache of the decision route: bounds and eviction."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from litestar.testing import TestClient

from controlplane.auth.guard import AdminToken
from controlplane.auth.token_cache import TokenCache
from tests.api.policy_helpers import ALLOW, active_set
from tests.conftest import bearer


def token(token_id: str = "t1", expires_at: datetime | None = None) -> AdminToken:
    return AdminToken(id=token_id, scope="global", zone_id=None, expires_at=expires_at)


def test_entries_expire_after_the_ttl() -> None:
    cache = TokenCache(0.05)
    cache.put("h", token(), None, cache.epoch)
    assert cache.get("h") == token()
    time.sleep(0.06)
    assert cache.get("h") is None


def test_an_entry_never_outlives_the_token() -> None:
    cache = TokenCache(60)
    soon = datetime.now(UTC) + timedelta(seconds=0.05)
    cache.put("h", token(expires_at=soon), soon, cache.epoch)
    assert cache.get("h") is not None
    time.sleep(0.06)
    assert cache.get("h") is None
    past = datetime.now(UTC) - timedelta(seconds=1)
    cache.put("p", token(expires_at=past), past, cache.epoch)
    assert cache.get("p") is None


def test_eviction_wins_over_a_lookup_that_started_before_it() -> None:
    cache = TokenCache(60)
    epoch = cache.epoch  # a lookup starts …
    cache.evict("t1")  # … the token is revoked meanwhile …
    cache.put("h", token(), None, epoch)  # … and the stale answer is not cached
    assert cache.get("h") is None
    cache.put("h", token(), None, cache.epoch)
    cache.evict("t1")
    assert cache.get("h") is None


def test_zero_ttl_disables_the_cache() -> None:
    cache = TokenCache(0)
    cache.put("h", token(), None, cache.epoch)
    assert cache.get("h") is None


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
