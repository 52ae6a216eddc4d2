"""The cost of the Prometheus metrics on the decision API: off, on, and on in multiprocess
mode, loaded in turn.

Run: ``.venv/bin/python bench/metrics_cost.py [--rounds 9] [--seconds 6] [--clients 32]``.

Three servers with one worker each on one embedded PostgreSQL — metrics off
(``CARACAL_METRICS_ENABLED=false``: no route, every recording point returns at once), on
(single-process mode, what one worker uses) and on in multiprocess mode (uvicorn started
directly with ``PROMETHEUS_MULTIPROC_DIR``: one worker writing its mmap files, as each of
``serve --workers N`` does) — are loaded by wrk in turn, the order rotated every round, so
machine noise falls on all three alike. Prints every round, the medians, and the median of
the per-round ratios to "off". First, ``bench/metrics_ops.py``: the cost of one observation
and of one decision's recording in each prometheus_client mode.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from harness import (
    cpu_seconds,
    decision_script,
    embedded_postgres,
    free_port,
    run_wrk,
    service_env,
    set_up_zone,
    start_server,
    stop,
    wait_for,
)

VARIANTS = ("off", "on", "on, multiprocess")


def start(name: str, url: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    if name == "off":
        return start_server(url, port, tmp / "data", env={"CARACAL_METRICS_ENABLED": "false"})
    if name == "on":
        return start_server(url, port, tmp / "data")
    multiproc = tmp / "multiproc"
    multiproc.mkdir()
    env = {**service_env(url, tmp / "data"), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    command = [sys.executable, "-m", "uvicorn", "controlplane.app:create_app_from_env"]
    command += ["--factory", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(command, env=env)


def run(rounds: int, seconds: float, clients: int) -> None:
    subprocess.run([sys.executable, str(Path(__file__).with_name("metrics_ops.py"))], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-metrics-"))
    ports = {name: free_port() for name in VARIANTS}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    script = decision_script()
    with embedded_postgres(tmp / "pg") as (url, _):
        try:
            for name in VARIANTS:  # one at a time: each runs the migrations at start-up
                procs[name] = start(name, url, ports[name], tmp)
                base = f"http://127.0.0.1:{ports[name]}"
                wait_for(lambda b=base: httpx.get(f"{b}/ready", timeout=1).status_code == 200)
            zone_id = set_up_zone(f"http://127.0.0.1:{ports['on']}")
            print(f"metrics cost: {clients} clients, {seconds:.0f} s per run, {rounds} rounds")
            for round_ in range(rounds):
                shift = round_ % len(VARIANTS)
                for name in VARIANTS[shift:] + VARIANTS[:shift]:
                    url_ = f"http://127.0.0.1:{ports[name]}/v1/zones/{zone_id}/decisions"
                    run_wrk(url_, script, tmp, connections=clients, seconds=2)  # warm-up
                    cpu_before = cpu_seconds(procs[name].pid)
                    result = run_wrk(url_, script, tmp, connections=clients, seconds=seconds)
                    cpu = (cpu_seconds(procs[name].pid) - cpu_before) / result.requests * 1e6
                    figures = {"rps": result.rps, "p50": result.p50, "p99": result.p99}
                    results[name].append({**figures, "cpu_us": cpu})
                    print(f"  round {round_ + 1} {name:<17} {result.rps:>7,.0f} req/s"
                          f"  p50 {result.p50:.2f} ms  p99 {result.p99:.2f} ms"
                          f"  CPU {cpu:.0f} us/req  non-2xx {result.status_errors}")  # fmt: skip
        finally:
            for proc in procs.values():
                stop(proc)
    report(results)


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str) -> dict[str, Any]:
        return {k: statistics.median(r[k] for r in results[name]) for k in results[name][0]}

    off = median("off")
    print("medians (ratio to off)")
    for name in VARIANTS:
        m = median(name)
        print(f"  {name:<17} {m['rps']:>7,.0f} req/s ({m['rps'] / off['rps']:.3f})"
              f"  p50 {m['p50']:.2f} ms ({m['p50'] / off['p50']:.3f})"
              f"  p99 {m['p99']:.2f} ms ({m['p99'] / off['p99']:.3f})"
              f"  CPU {m['cpu_us']:.0f} us/req ({m['cpu_us'] / off['cpu_us']:.3f})")  # fmt: skip
    print("median of the per-round ratios to off (same round: same machine noise)")
    for name in VARIANTS[1:]:
        pairs = list(zip(results[name], results["off"], strict=True))
        ratio = {k: statistics.median(r[k] / o[k] for r, o in pairs) for k in off}
        print(f"  {name:<17} req/s {ratio['rps']:.3f}  p50 {ratio['p50']:.3f}"
              f"  p99 {ratio['p99']:.3f}  CPU/req {ratio['cpu_us']:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    run(args.rounds, args.seconds, args.clients)


if __name__ == "__main__":
    main()
