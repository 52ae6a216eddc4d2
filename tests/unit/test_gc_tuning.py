"""GC settings of the served process."""

from __future__ import annotations

import gc

from controlplane.http.gc_tuning import THRESHOLDS, tune_gc_after_startup


def test_tuning_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_after_startup()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
