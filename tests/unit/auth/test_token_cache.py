"""The short-lived token cache of the decision route: bounds and eviction (no database)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from controlplane.auth.guard import AdminToken
from controlplane.auth.token_cache import REFRESH_AHEAD, TokenCache


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


class CountingLookup:
    """A token lookup that takes ``delay`` seconds and counts its calls."""

    def __init__(self, answer: AdminToken | None, delay: float = 0.02) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> AdminToken | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.answer


def test_concurrent_misses_share_one_lookup() -> None:
    async def run() -> None:
        cache = TokenCache(60)
        look_up = CountingLookup(token())
        answers = await asyncio.gather(*(cache.lookup("h", look_up) for _ in range(32)))
        assert answers == [token()] * 32
        assert look_up.calls == 1
        assert await cache.lookup("h", look_up) == token() and look_up.calls == 1
        # a refused token is not cached: every later request asks again (once at a time)
        refused = CountingLookup(None)
        assert await asyncio.gather(*(cache.lookup("x", refused) for _ in range(8))) == [None] * 8
        assert refused.calls == 1
        await cache.lookup("x", refused)
        assert refused.calls == 2

    asyncio.run(run())


def test_a_failed_lookup_fails_its_waiters_and_is_not_remembered() -> None:
    async def run() -> None:
        cache = TokenCache(60)

        async def broken() -> AdminToken | None:
            await asyncio.sleep(0.01)
            raise ConnectionError("database down")

        results = await asyncio.gather(
            *(cache.lookup("h", broken) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert await cache.lookup("h", CountingLookup(token())) == token()

    asyncio.run(run())


def test_an_entry_near_its_end_is_refreshed_in_the_background() -> None:
    async def run() -> None:
        ttl = 1.0
        cache = TokenCache(ttl)
        look_up = CountingLookup(token(), delay=0.01)
        began = time.monotonic()

        async def until(seconds: float) -> None:
            await asyncio.sleep(max(0.0, began + seconds - time.monotonic()))

        await cache.lookup("h", look_up)
        await until(ttl * (1 - REFRESH_AHEAD / 2))  # inside the refresh window
        assert await cache.lookup("h", look_up) == token()  # served at once …
        assert await cache.lookup("h", look_up) == token()
        await asyncio.sleep(0.05)
        assert look_up.calls == 2  # … while one refresh ran
        await until(ttl * 1.2)  # past the first entry's end: the refreshed one serves
        assert cache.get("h") == token()
        # a refresh that finds the token revoked drops the entry
        look_up.answer = None
        await until(ttl * (2 - REFRESH_AHEAD / 2) - 0.05)
        assert await cache.lookup("h", look_up) == token()
        await asyncio.sleep(0.05)
        assert cache.get("h") is None
        assert look_up.calls == 3

    asyncio.run(run())


def test_an_entry_counts_its_life_from_the_start_of_its_lookup() -> None:
    async def run() -> None:
        cache = TokenCache(0.5)
        slow = CountingLookup(token(), delay=0.3)
        started = time.monotonic()
        await cache.lookup("h", slow)
        # trusted at most the TTL after the lookup began (not after it ended: 0.8 s)
        while cache.get("h") is not None:
            await asyncio.sleep(0.01)
        assert time.monotonic() - started < 0.65

    asyncio.run(run())
