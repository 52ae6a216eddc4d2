"""A/B of the decision API under different settings, alternated in one run.

Run: ``.venv/bin/python bench/ab.py [--duration 5] [--runs 3] [--workers 1]
NAME=VAR=VALUE[,VAR=VALUE…] …`` (e.g. ``fast=CARACAL_HTTP_FAST_PATH=true
slow=CARACAL_HTTP_FAST_PATH=false``). One embedded PostgreSQL and one zone (the
``role-based`` template, as ``bench/peer.py``); in each round every variant is started
fresh, warmed up and loaded by ``wrk -t1 -c32`` for ``--duration`` seconds, in a rotated
order. Prints per variant the median requests/s, p50/p99 and CPU µs per request (the
server's process tree, and with PostgreSQL's backends), and each variant's ratios to the
first one: on a shared machine compare these ratios, not the absolute figures.
``--floor`` adds ``bench/pdp_floor.py`` (bare ASGI + the same evaluation) to every round and
prints each variant's worker CPU ÷ the floor's, the median of the rounds' ratios: the
steady way to read the service's distance from the floor (a separate run of each drifts
with the machine by ±10 %).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from harness import (
    E2E_INPUT,
    WrkResult,
    cpu_between,
    decision_script,
    embedded_postgres,
    free_port,
    postmaster_pid,
    run_wrk,
    set_up_zone,
    start_floor,
    start_server,
    stop,
    tree_cpu_seconds,
    wait_for,
)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name=VAR=VALUE,VAR=VALUE`` → (name, env); ``name=`` for the defaults."""
    name, _, assignments = text.partition("=")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    return name, env


def main() -> None:
    """Parse, run the rounds, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="name=VAR=VALUE[,VAR=VALUE…]")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=0, help="post batches of this size")
    parser.add_argument("--floor", action="store_true", help="the floor in every round too")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    variants = [parse_variant(v) for v in args.variants]
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-ab-"))
    results: dict[str, list[tuple[float, float, float, float, float]]] = {}
    floor_cpu: list[float] = []
    print(
        f"A/B, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; wrk -t1 -c32,"
        f" {args.duration:.0f} s per run, {args.runs} round(s), {args.workers} worker(s)"
    )
    try:
        with embedded_postgres(tmp / "pg") as (url, data):
            zone = None
            for round_ in range(args.runs):
                order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
                for name, env in order:
                    port = free_port()
                    base = f"http://127.0.0.1:{port}"
                    with (tmp / f"{name}.log").open("wb") as out:
                        proc = start_server(
                            url, port, tmp / "data", workers=args.workers, env=env, output=out
                        )
                    try:
                        ready = f"{base}/ready"
                        wait_for(lambda: httpx.get(ready, timeout=1).status_code == 200)  # noqa: B023
                        zone = zone or set_up_zone(base, verbose=False)
                        target = f"{base}/v1/zones/{zone}/decisions"
                        body = None
                        if args.batch:
                            target += "/batch"
                            body = {"inputs": [E2E_INPUT] * args.batch}
                        w, cpu, pg_cpu = loaded(
                            proc.pid,
                            target,
                            decision_script(body),
                            tmp,
                            (args.warmup, args.duration),
                            postmaster_pid(data),
                        )
                    finally:
                        stop(proc)
                    per = max(w.requests, 1) * max(args.batch, 1)
                    cpu, pg_cpu = cpu / per * 1e6, pg_cpu / per * 1e6
                    results.setdefault(name, []).append((w.rps, w.p50, w.p99, cpu, cpu + pg_cpu))
                    print(
                        f"  {name:<10} {w.rps:>8,.0f} req/s  p50 {w.p50:6.2f}  p99 {w.p99:6.2f} ms"
                        f"  CPU {cpu:4.0f} us/decision  +PG {cpu + pg_cpu:4.0f}"
                        f"  non-2xx {w.status_errors}",
                        flush=True,
                    )
                if args.floor and zone is not None:
                    floor_cpu.append(run_floor(tmp, zone, args.warmup, args.duration))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    first = variants[0][0]

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    print(f"medians (ratio to {first}); load average at the end {os.getloadavg()[0]:.2f}")
    for name, _ in variants:
        print(
            f"  {name:<10} {med(name, 0):>8,.0f} req/s ({med(name, 0) / med(first, 0):.2f})"
            f"  p99 {med(name, 2):6.2f} ms ({med(name, 2) / med(first, 2):.2f})"
            f"  CPU {med(name, 3):4.0f} us ({med(name, 3) / med(first, 3):.2f})"
            f"  +PG {med(name, 4):4.0f} us ({med(name, 4) / med(first, 4):.2f})"
        )
    if floor_cpu:
        floor = statistics.median(floor_cpu)
        print(f"worker CPU ÷ the floor's {floor:.0f} us (median of the rounds' ratios):")
        for name, _ in variants:
            ratios = [r[3] / f for r, f in zip(results[name], floor_cpu, strict=True)]
            rounds = ", ".join(f"{x:.2f}" for x in ratios)
            print(f"  {name:<10} {statistics.median(ratios):.2f}  (rounds: {rounds})")


def loaded(
    pid: int,
    target: str,
    script: str,
    tmp: Path,
    seconds: tuple[float, float],
    postgres: int | None = None,
) -> tuple[WrkResult, float, float]:
    """A warm-up and a timed wrk run (``seconds``): the timed run, and the CPU seconds it
    took of the server's process tree and of PostgreSQL's (0 without ``postgres``)."""
    warmup, duration = seconds
    run_wrk(target, script, tmp, seconds=warmup)
    cpu0 = tree_cpu_seconds(pid)
    pg0 = tree_cpu_seconds(postgres) if postgres else {}
    w = run_wrk(target, script, tmp, seconds=duration)
    cpu = cpu_between(cpu0, tree_cpu_seconds(pid))
    pg = cpu_between(pg0, tree_cpu_seconds(postgres)) if postgres else 0.0
    return w, cpu, pg


def run_floor(tmp: Path, zone: str, warmup: float, duration: float) -> float:
    """One warmed-up wrk run against a fresh floor; its CPU µs per request."""
    port = free_port()
    target = f"http://127.0.0.1:{port}/v1/zones/{zone}/decisions"
    with (tmp / "floor.log").open("wb") as out:
        proc = start_floor(port, out)
    try:
        body = {"input": E2E_INPUT}
        wait_for(lambda: httpx.post(target, json=body, timeout=1).status_code == 200)
        w, cpu, _ = loaded(proc.pid, target, decision_script(), tmp, (warmup, duration))
    finally:
        stop(proc)
    cpu = cpu / max(w.requests, 1) * 1e6
    print(
        f"  {'floor':<10} {w.rps:>8,.0f} req/s  p50 {w.p50:6.2f}  p99 {w.p99:6.2f} ms"
        f"  CPU {cpu:4.0f} us/decision",
        flush=True,
    )
    return cpu


if __name__ == "__main__":
    main()
