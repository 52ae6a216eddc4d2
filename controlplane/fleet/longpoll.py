"""OPA long polling: bundle requests held until the zone's active set changes.

A held request is one future in a dict, woken by the PDP runtime's change listener — the same
invalidation (NOTIFY, reconciliation, the activating request itself) that swaps the embedded
PDP's compiled set in this process. Holding costs no database connection and no thread; each
worker process learns of a change through its own listener.
"""

from __future__ import annotations

import asyncio
import re

__all__ = ["MAX_WAIT_SECONDS", "ZoneWatch", "prefer_wait"]

#: Longest a bundle request is held, whatever ``Prefer: wait=N`` asks.
MAX_WAIT_SECONDS = 300
_WAIT = re.compile(r"^\s*wait\s*=\s*(\d{1,9})\s*$", re.IGNORECASE)


def prefer_wait(header: str | None) -> int:
    """Seconds asked by OPA's ``Prefer: modes=snapshot,delta;wait=N`` (0 when absent or
    unreadable), capped at ``MAX_WAIT_SECONDS``."""
    if not header:
        return 0
    for part in re.split(r"[;,]", header):
        match = _WAIT.match(part)
        if match:
            return min(int(match.group(1)), MAX_WAIT_SECONDS)
    return 0


class ZoneWatch:
    """Futures of the requests waiting for a change of each zone."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    def changed(self, zone_id: str) -> None:
        """Wake every request waiting on ``zone_id`` (a runtime change listener)."""
        for future in self._waiting.pop(zone_id, ()):
            if not future.done():
                future.set_result(None)

    def waiting(self, zone_id: str | None = None) -> int:
        """How many requests wait (on one zone, or on any)."""
        if zone_id is not None:
            return len(self._waiting.get(zone_id, ()))
        return sum(len(futures) for futures in self._waiting.values())

    async def wait(self, zone_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change of the zone; True when one came."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(zone_id, set()).add(future)
        try:
            done, _ = await asyncio.wait({future}, timeout=max(timeout, 0.0))
            return bool(done)
        finally:
            futures = self._waiting.get(zone_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiting[zone_id]
            if not future.done():
                future.cancel()
