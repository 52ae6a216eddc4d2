"""Outbox metrics: the relay's count of unpublished rows and each row's publish lag."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from controlplane.metrics.definitions import OUTBOX_PENDING, OUTBOX_PUBLISH_LAG
from controlplane.metrics.switch import SWITCH

_lag_by_publisher: dict[str, Any] = {}


def outbox_pending(count: int) -> None:
    """Record the number of unpublished outbox rows a relay just counted."""
    if not SWITCH.on:
        return
    OUTBOX_PENDING.set(count)


def outbox_published(publisher: str, created_at: datetime) -> None:
    """Observe the lag of a row ``publisher`` (a publisher's fixed name) just published."""
    if not SWITCH.on:
        return
    child = _lag_by_publisher.get(publisher)
    if child is None:
        child = _lag_by_publisher[publisher] = OUTBOX_PUBLISH_LAG.labels(publisher)
    child.observe(max(0.0, time.time() - created_at.timestamp()))
