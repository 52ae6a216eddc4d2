"""A short-lived, per-process cache of validated admin tokens (docs/performance.md).

An entry lives at most ``CARACAL_TOKEN_CACHE_SECONDS`` (default 1 s, 0 disables the cache)
and never past the token's ``expires_at``. A revocation evicts the token at once in the
process that revoked it, and in every other process when the ``caracal_admin_tokens``
NOTIFY (sent by a trigger on ``admin_tokens``) arrives; if that message is lost, the TTL is
the bound. An ``epoch`` guards the race where a lookup that started before a revocation
would cache the token after the eviction.

Under load every in-flight request would miss together when an entry expires (a stampede
of identical lookups through the pool, the largest cause of the decision route's tail,
docs/performance.md). So ``lookup`` is single-flight — one database lookup per token at a
time, the other requests await its answer — and an entry in the last ``REFRESH_AHEAD`` of
its life is refreshed by one background lookup while it is still served. An entry's life
counts from the start of the lookup that made it, so a revoked token is never trusted more
than the TTL after the last lookup that saw it live (and a refresh that finds it revoked
drops it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("controlplane.token_cache")

#: Drop expired entries when the cache grows past this many tokens.
_PRUNE_AT = 10_000
#: The last fraction of an entry's life in which a request starts a background refresh.
REFRESH_AHEAD = 0.2

Lookup = Callable[[], Awaitable[Any]]


class TokenCache:
    """``token_sha256 -> (token, deadline)`` with eviction by token id."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.epoch = 0
        self._entries: dict[str, tuple[Any, float]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: set[asyncio.Future[Any]] = set()

    def get(self, token_sha256: str) -> Any | None:
        """The cached token, or None when absent or stale."""
        entry = self._entries.get(token_sha256)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(token_sha256, None)
            return None
        return entry[0]

    def put(
        self,
        token_sha256: str,
        token: Any,
        expires_at: datetime | None,
        epoch: int,
        looked_up_at: float | None = None,
    ) -> None:
        """Cache ``token`` unless an eviction happened since ``epoch`` was read; its life
        counts from ``looked_up_at`` (``time.monotonic()`` when the lookup started; now)."""
        if self.ttl <= 0 or epoch != self.epoch:
            return
        ttl = self.ttl
        if expires_at is not None:
            ttl = min(ttl, (expires_at - datetime.now(UTC)).total_seconds())
        if ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= _PRUNE_AT:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
        self._entries[token_sha256] = (token, (looked_up_at or now) + ttl)

    def fresh(self, token_sha256: str) -> Any | None:
        """The cached token when its entry is live and not yet due for a refresh, else None
        (then ``lookup`` decides): the hot path, without an await."""
        entry = self._entries.get(token_sha256)
        if entry is not None and entry[1] - time.monotonic() >= self.ttl * REFRESH_AHEAD:
            return entry[0]
        return None

    async def lookup(self, token_sha256: str, look_up: Lookup) -> Any | None:
        """The cached token; else the answer of ``look_up()`` (the live token or None), run
        once for all concurrent callers and cached. An entry near the end of its life is
        served while one background ``look_up()`` refreshes it."""
        entry = self._entries.get(token_sha256)
        if entry is not None:
            now = time.monotonic()
            left = entry[1] - now
            if left > 0:
                if left < self.ttl * REFRESH_AHEAD and token_sha256 not in self._inflight:
                    self._refresh(token_sha256, look_up)
                return entry[0]
            self._entries.pop(token_sha256, None)
        pending = self._inflight.get(token_sha256)
        if pending is None:
            pending = self._start(token_sha256, look_up)
        # A caller that goes away must not cancel the lookup the others await.
        return await asyncio.shield(pending)

    def _start(self, token_sha256: str, look_up: Lookup) -> asyncio.Future[Any]:
        """Run ``look_up()`` once, cache its answer, and forget it when done."""
        epoch, started = self.epoch, time.monotonic()

        async def run() -> Any:
            try:
                token = await look_up()
                if token is None:
                    self._entries.pop(token_sha256, None)  # revoked or expired meanwhile
                else:
                    self.put(token_sha256, token, token.expires_at, epoch, started)
                return token
            finally:
                self._inflight.pop(token_sha256, None)

        task = asyncio.ensure_future(run())
        self._inflight[token_sha256] = task
        return task

    def _refresh(self, token_sha256: str, look_up: Lookup) -> None:
        """A background ``_start``: its errors are logged, the entry ages out meanwhile."""
        task = self._start(token_sha256, look_up)
        self._refreshing.add(task)  # keep a reference until it is done

        def done(finished: asyncio.Future[Any]) -> None:
            self._refreshing.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                error = repr(finished.exception())
                log.warning("admin token refresh failed", extra={"error": error})

        task.add_done_callback(done)

    def evict(self, token_id: str) -> None:
        """Forget every entry of the token with this id."""
        self.epoch += 1
        for key in [k for k, (token, _) in self._entries.items() if token.id == token_id]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget everything (e.g. after the notification connection was lost)."""
        self.epoch += 1
        self._entries.clear()
