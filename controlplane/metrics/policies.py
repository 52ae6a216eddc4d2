"""PDP metrics: zones with a compiled active set, and activation lag.

The PDP runtime calls ``zone_state_replaced`` whenever it installs or drops a zone's state.
Activation lag is measured when a newer activation replaces a state this process had
installed (the activating process, or another one on the NOTIFY or the reconciliation);
a zone this process had not loaded is loaded on its first decision, with no lag to measure.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Protocol

from controlplane.metrics.definitions import POLICY_ACTIVATION_LAG, POLICY_SETS_LOADED
from controlplane.metrics.switch import SWITCH


class _ZoneState(Protocol):
    @property
    def generation(self) -> int: ...
    @property
    def active(self) -> Any: ...
    @property
    def activated_at(self) -> datetime | None: ...


def zone_state_replaced(old: _ZoneState | None, new: _ZoneState | None) -> None:
    """Account for ``new`` replacing ``old`` (either None: a zone loaded or dropped)."""
    if not SWITCH.on:
        return
    delta = int(new is not None and new.active is not None) - int(
        old is not None and old.active is not None
    )
    if delta:
        POLICY_SETS_LOADED.inc(delta)
    if (
        old is not None
        and new is not None
        and new.generation > old.generation
        and new.activated_at is not None
    ):
        POLICY_ACTIVATION_LAG.observe(max(0.0, time.time() - new.activated_at.timestamp()))
