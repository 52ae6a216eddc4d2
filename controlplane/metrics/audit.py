"""Decision audit writer metrics: rows per group-commit INSERT and its duration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from controlplane.metrics.definitions import AUDIT_WRITE_BATCH_ROWS, AUDIT_WRITE_DURATION
from controlplane.metrics.switch import SWITCH


@contextmanager
def audit_write_timer(rows: int) -> Iterator[None]:
    """Around one batch INSERT of ``rows`` rows: observe its size and duration (failed
    writes included: a write that times out is what the latency alert is for)."""
    if not SWITCH.on:
        yield
        return
    AUDIT_WRITE_BATCH_ROWS.observe(rows)
    started = perf_counter()
    try:
        yield
    finally:
        AUDIT_WRITE_DURATION.observe(perf_counter() - started)
