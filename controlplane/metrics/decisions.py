"""Decision metrics: outcomes by source, handler time, evaluation time.

The pipeline calls ``decision_clock()`` when it starts and ``decision_answered`` when it has
its answer; the batch endpoint counts each item with ``count_decision(outcome, "batch")``.
Everything is bound at import: a decision costs two histogram observations, one counter
increment and two clock reads, without allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import ParamSpec, TypeVar

from controlplane.metrics.definitions import (
    DECISION_DURATION,
    DECISION_OUTCOMES,
    DECISION_SOURCES,
    DECISIONS,
    POLICY_EVALUATION_DURATION,
)
from controlplane.metrics.switch import SWITCH

P = ParamSpec("P")
R = TypeVar("R")

#: The clock the decision metrics read (seconds, monotonic).
decision_clock = perf_counter

_counters = {
    source: {outcome: DECISIONS.labels(outcome, source) for outcome in DECISION_OUTCOMES}
    for source in DECISION_SOURCES
}
_observe_decision = DECISION_DURATION.observe
_observe_evaluation = POLICY_EVALUATION_DURATION.observe


def count_decision(outcome: str, source: str = "api") -> None:
    """Count one answered decision (``outcome``: allow, deny or partial; ``source``: api or
    batch)."""
    if not SWITCH.on:
        return
    _counters[source][outcome].inc()


def decision_answered(outcome: str, started: float, source: str = "api") -> None:
    """Count an answered decision and observe its handler time since ``started``
    (a ``decision_clock()`` reading)."""
    if not SWITCH.on:
        return
    _observe_decision(perf_counter() - started)
    _counters[source][outcome].inc()


def timed_evaluation(evaluate: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``evaluate(*args, **kwargs)``, its duration observed as policy evaluation time."""
    if not SWITCH.on:
        return evaluate(*args, **kwargs)
    started = perf_counter()
    try:
        return evaluate(*args, **kwargs)
    finally:
        _observe_evaluation(perf_counter() - started)
