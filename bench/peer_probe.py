"""Timing probe for the served decision API: ``python bench/peer_probe.py serve …``.

Runs ``python -m controlplane`` in this process (one worker: uvicorn serves in-process)
after wrapping, from the outside and without changing the service's code, what may hold the
latency tail: garbage collections (``gc.callbacks``), the decision audit writer's INSERTs
and each decision's wait for its commit, token-cache misses (``controlplane.auth
.lookup_token``), PDP reconciliation ticks, outbox relay sweeps, the whole request inside
the ASGI app, and event-loop lag (a task that sleeps 2 ms and records the overshoot).

``SIGUSR1`` clears what was recorded (after the warm-up); ``SIGUSR2`` writes it as JSON to
``$PEER_PROBE_OUT`` (``bench/peer_profile.py`` reads it). Not for production.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import runpy
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: kind -> list of (start, end, extra) in ``time.perf_counter`` seconds
EVENTS: dict[str, list[tuple[float, float, int]]] = {}
_gc_started: dict[int, float] = {}
_lag_task: asyncio.Task[None] | None = None


def _record(kind: str, start: float, end: float, extra: int = 0) -> None:
    EVENTS.setdefault(kind, []).append((start, end, extra))


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    """``gc.callbacks`` hook: one ``gc<generation>`` event per collection."""
    if phase == "start":
        _gc_started[info["generation"]] = time.perf_counter()
    else:
        start = _gc_started.pop(info["generation"], None)
        if start is not None:
            _record(f"gc{info['generation']}", start, time.perf_counter(), info["collected"])


def _timed(kind: str, size: Callable[..., int] | None = None) -> Callable[..., Any]:
    """Wrap an async function so every call is recorded as a ``kind`` event."""

    def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                extra = size(*args, **kwargs) if size else 0
                _record(kind, start, time.perf_counter(), extra)

        return wrapper

    return decorate


async def _loop_lag() -> None:
    """Sleep 2 ms at a time; record by how much each wake-up was late."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(0.002)
        end = time.perf_counter()
        _record("loop_lag", start + 0.002, end)


def _install() -> None:
    """Wrap the service's functions (before the app is built)."""
    from controlplane.audit import decision_events
    from controlplane.auth import guard
    from controlplane.http import request_context
    from controlplane.outbox import relay
    from controlplane.pdp import runtime

    writer = decision_events.DecisionAuditWriter
    writer._insert = _timed("flush", lambda self, events, *_, **__: len(events))(writer._insert)  # type: ignore[method-assign]
    writer.write_all = _timed("commit_wait")(writer.write_all)  # type: ignore[method-assign]
    guard.lookup_token = _timed("token_lookup")(guard.lookup_token)
    runtime.PdpRuntime.reconcile = _timed("reconcile")(runtime.PdpRuntime.reconcile)  # type: ignore[method-assign]
    relay.Relay.run_once = _timed("relay_sweep")(relay.Relay.run_once)  # type: ignore[method-assign]
    middleware = request_context.RequestContextMiddleware
    call = middleware.__call__

    async def timed_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        global _lag_task
        if _lag_task is None:
            _lag_task = asyncio.get_running_loop().create_task(_loop_lag())
        if scope["type"] != "http" or "/decisions" not in scope["path"]:
            await call(self, scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await call(self, scope, receive, send)
        finally:
            _record("request", start, time.perf_counter())

    middleware.__call__ = timed_call  # type: ignore[method-assign]
    gc.callbacks.append(_on_gc)


def _clear(signum: int, frame: object) -> None:
    EVENTS.clear()


def _dump(signum: int, frame: object) -> None:
    events: dict[str, Any] = {kind: list(values) for kind, values in EVENTS.items()}
    events["gc_stats"] = gc.get_stats()
    events["gc_threshold"] = gc.get_threshold()
    events["gc_count"] = gc.get_count()
    Path(os.environ["PEER_PROBE_OUT"]).write_text(json.dumps(events))


def main() -> None:
    """Install the probe and run the service's command line."""
    _install()
    signal.signal(signal.SIGUSR1, _clear)
    signal.signal(signal.SIGUSR2, _dump)
    sys.argv = ["controlplane", *sys.argv[1:]]
    runpy.run_module("controlplane", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
