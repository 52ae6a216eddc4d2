"""The cost of one prometheus_client observation in each mode, as the decision path makes
them (a bound counter child's ``inc``, an unlabelled histogram's ``observe``), and the
whole recording of one decision through the service's own helpers.

Run: ``.venv/bin/python bench/metrics_ops.py`` (``bench/metrics_cost.py`` runs it first).
The mode is chosen when prometheus_client is imported, so each mode runs in its own
interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_MEASURE = """
import timeit
from prometheus_client import Counter, Histogram
counter = Counter("c_total", "c", ("decision", "source")).labels("allow", "api")
histogram = Histogram("h_seconds", "h", buckets=(
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
for label, stmt in (("counter inc", "counter.inc()"),
                    ("histogram observe (0.4 ms)", "histogram.observe(0.0004)")):
    n = 200_000
    best = min(timeit.repeat(stmt, globals=globals(), number=n, repeat=5))
    print(f"  {label:<28} {best / n * 1e9:>7.0f} ns")
from controlplane.metrics.decisions import decision_answered, decision_clock, timed_evaluation
from controlplane.metrics.http import observe_request
scope = {"method": "POST", "path_template": "/v1/zones/{zone_id:str}/decisions"}
evaluate = lambda: None
per_decision = (
    "observe_request(scope, 200, 0.004); timed_evaluation(evaluate);"
    " decision_answered('allow', decision_clock())"
)
n = 100_000
best = min(timeit.repeat(per_decision, globals=globals(), number=n, repeat=5))
bare = min(timeit.repeat("evaluate()", globals=globals(), number=n, repeat=5))
print(f"  {'one decision (5 observations)':<28} {(best - bare) / n * 1e9:>7.0f} ns")
"""


def main() -> None:
    print("one observation, best of 5 (prometheus_client)")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    print(" single-process mode (in-memory value under a lock)")
    subprocess.run([sys.executable, "-c", _MEASURE], env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="caracal-bench-mp-") as path:
        print(" multiprocess mode (mmap file write, pid check)")
        env["PROMETHEUS_MULTIPROC_DIR"] = path
        subprocess.run([sys.executable, "-c", _MEASURE], env=env, check=True)


if __name__ == "__main__":
    main()
