"""Garbage-collector settings for a serving process (not for tests or the CLI).

Once start-up is over, ``gc.freeze()`` moves everything alive (modules, the application, the
compiled policies …) to a permanent generation that no collection traverses again, and a
higher generation-0 threshold makes young collections rarer: request handling allocates
many short-lived containers (decoded bodies, audit metadata), so with the default threshold
(700) a collection ran every few requests and added its pause to the latency tail.
Reference cycles are still collected, only less often; memory stays bounded.
"""

from __future__ import annotations

import gc

#: Generation thresholds (young, middle, old); the default is (700, 10, 10).
THRESHOLDS = (50_000, 20, 10)


def tune_gc_after_startup() -> None:
    """Collect once, freeze the survivors and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
