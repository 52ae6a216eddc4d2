"""The short-lived token cache of the decision route: bounds and eviction (no database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from controlplane.auth.guard import AdminToken
from controlplane.auth.token_cache import TokenCache


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
