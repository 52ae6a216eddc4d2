"""A short-lived, per-process cache of validated admin tokens (docs/performance.md).

An entry lives at most ``CARACAL_TOKEN_CACHE_SECONDS`` (default 1 s, 0 disables the cache)
and never past the token's ``expires_at``. A revocation evicts the token at once in the
process that revoked it, and in every other process when the ``caracal_admin_tokens``
NOTIFY (sent by a trigger on ``admin_tokens``) arrives; if that message is lost, the TTL is
the bound. An ``epoch`` guards the race where a lookup that started before a revocation
would cache the token after the eviction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

#: Drop expired entries when the cache grows past this many tokens.
_PRUNE_AT = 10_000


class TokenCache:
    """``token_sha256 -> (token, deadline)`` with eviction by token id."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.epoch = 0
        self._entries: dict[str, tuple[Any, float]] = {}

    def get(self, token_sha256: str) -> Any | None:
        """The cached token, or None when absent or stale."""
        entry = self._entries.get(token_sha256)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(token_sha256, None)
            return None
        return entry[0]

    def put(self, token_sha256: str, token: Any, expires_at: datetime | None, epoch: int) -> None:
        """Cache ``token`` unless an eviction happened since ``epoch`` was read."""
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
        self._entries[token_sha256] = (token, now + ttl)

    def evict(self, token_id: str) -> None:
        """Forget every entry of the token with this id."""
        self.epoch += 1
        for key in [k for k, (token, _) in self._entries.items() if token.id == token_id]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget everything (e.g. after the notification connection was lost)."""
        self.epoch += 1
        self._entries.clear()
