"""Admin-token guard refusals by reason: missing, invalid, expired, revoked, forbidden."""

from __future__ import annotations

from controlplane.metrics.definitions import ADMIN_AUTH_FAILURES, AUTH_FAILURE_REASONS
from controlplane.metrics.switch import SWITCH

_failures = {reason: ADMIN_AUTH_FAILURES.labels(reason) for reason in AUTH_FAILURE_REASONS}


def auth_failed(reason: str) -> None:
    """Count one refused admin request (``reason`` one of ``AUTH_FAILURE_REASONS``)."""
    if SWITCH.on:
        _failures[reason].inc()
