"""``caracal policies push … --activate --wait-fleet``: wait until the zone's OPA fleet runs
the pushed set version (spec/opa-fleet.md, ``GET …/pdp-instances``)."""

from __future__ import annotations

import time
from typing import Any, Protocol

__all__ = ["EXIT_FLEET_LAGGING", "wait_for_fleet"]

#: Exit status when some live OPA instance has not loaded the version before the timeout.
EXIT_FLEET_LAGGING = 5


class _Api(Protocol):
    def call(self, method: str, path: str, body: Any = None) -> Any: ...


def wait_for_fleet(
    api: _Api, version_id: str, timeout: float, *, interval: float = 1.0
) -> list[dict[str, Any]]:
    """Poll the zone's live instances until each reports ``version_id`` as its active
    revision; return those still lagging when ``timeout`` seconds have passed (empty: done).
    A zone with no live instance is done at once."""
    deadline = time.monotonic() + timeout
    while True:
        instances = api.call("GET", "/pdp-instances")
        lagging = [i for i in instances if i.get("active_revision") != version_id]
        if not lagging or time.monotonic() >= deadline:
            return lagging
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
