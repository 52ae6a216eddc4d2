"""Metrics across worker processes: prometheus_client's multiprocess mode.

With ``serve --workers N`` (N > 1) every worker writes its values to memory-mapped files in
one directory and a scrape of any worker sums them all. The directory is
``CARACAL_METRICS_DIR`` when set (created if missing, its ``*.db`` files deleted at
start-up: it must belong to this one server), else a fresh private directory in
``/dev/shm`` (tmpfs: an observation never reaches a disk) or the system temp directory,
removed when ``serve`` exits. It is exported as ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start: prometheus_client picks its mode when it is first imported, and each worker
is a fresh interpreter that inherits the variable.

With one worker (or metrics disabled) the variable is removed: single-process mode, where
an observation is an in-memory add instead of an mmap write (docs/performance.md).

This module must not import prometheus_client at import time (see above).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.settings import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The shared directory when this process runs in multiprocess mode, else None."""
    return os.environ.get(ENV) or None


@contextmanager
def metrics_processes(settings: Settings) -> Iterator[Path | None]:
    """For ``serve``: while inside, the workers' shared directory is set up and exported
    (None: single-process mode)."""
    if settings.workers <= 1 or not settings.metrics_enabled:
        os.environ.pop(ENV, None)
        yield None
        return
    if settings.metrics_dir is not None:
        path, owned = settings.metrics_dir, False
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
        path, owned = Path(tempfile.mkdtemp(prefix="caracal-metrics-", dir=shm)), True
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        if owned:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_workers() -> list[int]:
    """Mark every worker whose live gauges are still on file but that no longer runs (a
    crashed worker never marks itself) as dead: its ``live*`` gauges leave the sums (its
    counters and histograms stay: totals never go backwards). The pids marked."""
    path = multiprocess_dir()
    if path is None:
        return []
    from prometheus_client import multiprocess

    dead = set()
    for name in glob.glob(os.path.join(glob.escape(path), "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.match(os.path.basename(name))
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return sorted(dead)


def mark_worker_stopped() -> None:
    """At a worker's shutdown: its live gauges leave the sums."""
    path = multiprocess_dir()
    if path is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)
