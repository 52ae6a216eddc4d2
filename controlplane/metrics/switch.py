"""The process-wide switch: with ``CARACAL_METRICS_ENABLED=false`` every instrumentation
point returns at once (one attribute read), so metrics off costs nothing measurable."""

from __future__ import annotations


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


SWITCH = _Switch()


def enable_metrics(on: bool) -> None:
    """Turn recording on or off for this process (the app factory calls it)."""
    SWITCH.on = on
