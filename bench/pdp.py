"""PDP benchmark: in-process evaluations per second, then the decision API end to end.

Run: ``.venv/bin/python bench/pdp.py [--seconds 10] [--clients 32]`` (or ``make bench``).

1. In process: ``evaluate_set`` of the ``role-based`` template alone and of a five-policy
   set (``bench/pdp_inprocess.py`` has the cases).
2. End to end: an embedded PostgreSQL, ``python -m controlplane serve`` with one worker,
   the ``role-based`` template active in a zone, and ``--clients`` concurrent keep-alive
   clients posting ``/v1/zones/{zoneId}/decisions`` over loopback for ``--seconds``. The load
   comes from ``wrk`` when it is installed (Debian package ``wrk``), else from httpx clients
   in this process. Prints requests per second and p50/p99 latency, and checks that every
   answered decision has its audit row.
3. The floor: ``bench/pdp_floor.py`` (a bare ASGI app that only decodes the body and
   evaluates the same policy: no framework, auth or audit) served and loaded the same way,
   so the gap to (2) is what the service adds to the unavoidable work
   (``--skip-floor`` leaves it out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psycopg
from harness import (
    E2E_INPUT,
    TOKEN,
    cpu_seconds,
    decision_script,
    embedded_postgres,
    free_port,
    run_wrk,
    set_up_zone,
    start_floor,
    start_server,
    stop,
    wait_for,
)
from pdp_inprocess import FIVE, INPUT, build, measure

from controlplane.pdp import evaluate_set


def in_process(seconds: float) -> None:
    one, five = build(("role-based",)), build(FIVE)
    print("in-process evaluate_set (one thread)")
    header = ("case", "evals/s", "wall us/eval", "CPU us/eval", "CPU us/policy")
    print("  {:<20} {:>10} {:>13} {:>12} {:>14}".format(*header))
    for label, compiled in (("role-based alone", one), ("five policies", five)):
        rate, micros, cpu = measure(lambda c=compiled: evaluate_set(c, INPUT), seconds)
        per_policy = cpu / len(compiled.policies)
        print(f"  {label:<20} {rate:>10,.0f} {micros:>13.1f} {cpu:>12.1f} {per_policy:>14.1f}")


def load_with_wrk(url: str, clients: int, seconds: float, tmp: Path) -> dict[str, float]:
    """A 2 s warm-up, then the timed wrk run."""
    script = decision_script()  # the floor ignores the Authorization header
    run_wrk(url, script, tmp, connections=clients, seconds=2)
    result = run_wrk(url, script, tmp, connections=clients, seconds=seconds)
    return {
        "requests": float(result.requests),
        "rps": result.rps,
        "p50": result.p50,
        "p90": result.p90,
        "p99": result.p99,
        "errors": float(result.status_errors),
    }


async def _httpx_load(url: str, clients: int, seconds: float) -> dict[str, float]:
    body = json.dumps({"input": E2E_INPUT}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": float(len(latencies)),
        "rps": len(latencies) / elapsed,
        "p50": cuts[49],
        "p90": cuts[89],
        "p99": cuts[98],
        "errors": float(errors),
    }


def load(url: str, clients: int, seconds: float, tmp: Path) -> tuple[str, dict[str, float]]:
    """Drive ``url`` with ``clients`` closed-loop clients: wrk when installed, else httpx."""
    if shutil.which("wrk"):
        return "wrk -t1", load_with_wrk(url, clients, seconds, tmp)
    return "httpx", asyncio.run(_httpx_load(url, clients, seconds))


def print_figures(figures: dict[str, float]) -> None:
    print(
        f"  {figures['rps']:,.0f} requests/s   p50 {figures['p50']:.2f} ms"
        f"   p90 {figures['p90']:.2f} ms   p99 {figures['p99']:.2f} ms"
        f"   non-200: {figures['errors']:.0f}"
    )


def print_cpu(cpu_used: float, requests: float) -> None:
    cpu_per_request = cpu_used / requests * 1e6
    print(
        f"  server CPU per request: {cpu_per_request:.0f} us (user+system of the worker,"
        " warm-up included; one core would serve about"
        f" {1e6 / cpu_per_request:,.0f} requests/s)"
    )


def floor(seconds: float, clients: int) -> None:
    """The bare decode-and-evaluate ASGI app under the same server and load."""
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-floor-"))
    port = free_port()
    proc = start_floor(port)
    try:
        url = f"http://127.0.0.1:{port}/decisions"
        wait_for(lambda: httpx.post(url, json={"input": E2E_INPUT}, timeout=1).status_code == 200)
        print(f"floor: bare ASGI app (decode + evaluate_set only), {clients} clients, 1 worker")
        cpu_before = cpu_seconds(proc.pid)
        tool, figures = load(url, clients, seconds, tmp)
        print(f"  load generator: {tool}, {seconds:.0f} s")
        print_figures(figures)
        print_cpu(cpu_seconds(proc.pid) - cpu_before, figures["requests"])
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def end_to_end(seconds: float, clients: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with embedded_postgres(tmp / "pg") as (url, _):
        proc = start_server(url, port, tmp / "data")
        try:
            wait_for(lambda: httpx.get(f"{base}/ready", timeout=1).status_code == 200)
            print(f"end to end: POST /v1/zones/{{zoneId}}/decisions, {clients} clients, 1 worker")
            zone_id = set_up_zone(base)
            target = f"{base}/v1/zones/{zone_id}/decisions"
            cpu_before = cpu_seconds(proc.pid)
            tool, figures = load(target, clients, seconds, tmp)
            cpu_after = cpu_seconds(proc.pid)
            with psycopg.connect(url) as conn:
                audited, inserts = conn.execute(
                    "SELECT count(*), count(DISTINCT ingested_at) FROM audit_events"
                    " WHERE zone_id = %s AND event_type = 'decision'",
                    (zone_id,),
                ).fetchone()  # type: ignore[misc]
            print(f"  load generator: {tool}, {seconds:.0f} s")
            print_figures(figures)
            print_cpu(cpu_after - cpu_before, figures["requests"])
            print(f"  decision audit rows: {audited:,} (answered in the timed run: "
                  f"{figures['requests']:,.0f}, plus warm-up), in {inserts:,} INSERTs"
                  f" ({audited / max(inserts, 1):.1f} rows each)")  # fmt: skip
        finally:
            stop(proc)
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    args = parser.parse_args()
    in_process(min(args.seconds, 3.0))
    if not args.skip_e2e:
        end_to_end(args.seconds, args.clients)
    if not args.skip_floor:
        floor(args.seconds, args.clients)


if __name__ == "__main__":
    main()
