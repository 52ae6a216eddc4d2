"""Where the decision API's CPU and latency tail go, under the load of ``bench/peer.py``.

Run: ``.venv/bin/python bench/peer_profile.py [--duration 10]`` (needs ``wrk`` and, for the
CPU part, ``py-spy``: ``.venv/bin/pip install py-spy``; sampling another process needs
ptrace, i.e. root or CAP_SYS_PTRACE). The service runs with one worker under
``bench/peer_probe.py`` (timing wrappers, no code change) against an embedded PostgreSQL
and ``wrk -t1 -c32`` posts the bench decision. Two timed phases:

1. timing: the probe's events (GC pauses, audit INSERTs and commit waits, token-cache
   misses, reconciliation ticks, relay sweeps, event-loop lag), and which of them overlap
   the slowest 1 % of requests;
2. CPU: ``py-spy record`` of the worker, every sample put in one bucket (framework, auth,
   decoding, Rego, audit, response, uvicorn, logging, …) by its innermost frame of the
   service, scaled to the measured CPU microseconds per decision (``--leaves N``: the top
   innermost frames of each bucket);
3. ``--variants N``: N alternated runs of the plain service as configured, with the token
   cache at 60 s, with reconciliation every 60 s, and both (environment only), to see how
   much of the tail each periodic task holds.
"""

from __future__ import annotations

import argparse
import bisect
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from harness import (
    WrkResult,
    cpu_between,
    decision_script,
    embedded_postgres,
    free_port,
    postmaster_pid,
    run_wrk,
    set_up_zone,
    start_server,
    stop,
    tree_cpu_seconds,
    wait_for,
)

PROBE = Path(__file__).resolve().parent / "peer_probe.py"

# -- CPU buckets -----------------------------------------------------------------------------

#: (file suffix, function or "*") of the innermost service frame -> bucket
_OURS: list[tuple[str, str, str]] = [
    ("pdp/evaluate.py", "*", "Rego evaluation (evaluate_set: set_input, eval_rule, normalise)"),
    (
        "decisions/pipeline.py",
        "evaluate",
        "Rego evaluation (evaluate_set: set_input, eval_rule, normalise)",
    ),
    ("api/decisions.py", "decode_body", "request decoding (msgspec, strict)"),
    ("strict_input.py", "*", "request decoding (msgspec, strict)"),
    ("decisions/pipeline.py", "respond", "response building + encoding"),
    ("api/decisions.py", "answer_decision", "response building + encoding"),
    ("decisions/pipeline.py", "decision_event", "audit event building (metadata, redact, ids)"),
    ("decisions/pipeline.py", "audited", "audit event building (metadata, redact, ids)"),
    ("decisions/pipeline.py", "audited_input", "audit event building (metadata, redact, ids)"),
    ("decisions/pipeline.py", "_size_and_hash", "audit event building (metadata, redact, ids)"),
    ("secret_fields.py", "*", "audit event building (metadata, redact, ids)"),
    ("decision_events.py", "encode_batch", "audit writer: batch JSON encoding"),
    ("decision_events.py", "write", "audit writer: enqueue + future wake-up"),
    ("decision_events.py", "write_all", "audit writer: enqueue + future wake-up"),
    ("decision_events.py", "*", "audit writer: INSERT (psycopg) + flush loop"),
    ("auth/guard.py", "*", "auth (guard, bearer parse, SHA-256, token cache)"),
    ("token_cache.py", "*", "auth (guard, bearer parse, SHA-256, token cache)"),
    ("crypto.py", "hash_admin_token", "auth (guard, bearer parse, SHA-256, token cache)"),
    ("http/fast_path.py", "*", "fast path frame (routing, guard call, body, send)"),
    ("api/common.py", "*", "handler pipeline (other)"),
    ("sessions.py", "*", "handler pipeline (other)"),
    ("decisions/pipeline.py", "*", "handler pipeline (other)"),
    ("api/decisions.py", "*", "handler pipeline (other)"),
    ("ids.py", "*", "audit event building (metadata, redact, ids)"),
    ("request_context.py", "*", "request-id middleware"),
    ("pdp/runtime.py", "*", "background: PDP reconciliation"),
    ("relay.py", "*", "background: outbox relay"),
    ("listener.py", "*", "background: NOTIFY listener"),
    ("errors.py", "*", "handler pipeline (other)"),
]


def _frame(text: str) -> tuple[str, str]:
    """``(function, file)`` of one py-spy frame ``function (file:line)``."""
    function, _, rest = text.partition(" (")
    return function, rest.rsplit(":", 1)[0]


LITESTAR = "Litestar frame (routing, request, guard call, kwargs, response)"
UVICORN = "uvicorn + httptools + uvloop (HTTP parsing, socket I/O)"


def bucket(stack: list[str]) -> str:
    """The bucket of one sampled stack (root first): by the innermost frame of the service
    (comprehensions skipped), refined by the library frames it called."""
    frames = [_frame(f) for f in stack]
    files = [file for _, file in frames]
    if any("/logging/" in file for file in files):
        return "logging"
    if any(f.endswith("peer_probe.py") for _, f in frames[-2:]):
        return "probe (timing wrappers, loop-lag task)"
    ours = [
        i
        for i, (function, file) in enumerate(frames)
        if "controlplane/" in file
        and "site-packages" not in file
        and not file.endswith(("__main__.py", "cli/serve.py", "cli/main.py"))
        and not function.startswith("<")
    ]
    if not ours:
        if any("litestar/" in f for f in files):
            return LITESTAR
        if any("uvicorn/" in f for f in files):
            return UVICORN
        if any("psycopg" in f for f in files):
            return "psycopg (other)"
        return "event loop / other (" + (frames[-1][0] if frames else "?") + ")"
    function, file = frames[ours[-1]]
    deeper = files[ours[-1] + 1 :]
    if file.endswith("request_context.py"):
        if any("litestar/" in f for f in deeper):
            return LITESTAR
        if any("uvicorn/" in f for f in deeper):
            return UVICORN
        return "request-id middleware (uuid7, header copy)"
    if file.endswith("decision_events.py") and any(fn == "encode_batch" for fn, _ in frames):
        return "audit writer: batch JSON encoding"
    if file.endswith("api/decisions.py") and function == "decide":
        if any("litestar/serialization" in f for f in deeper):
            return "response building + encoding"
        if any("uuid6" in f for f in deeper):
            return "handler pipeline (other)"
    for suffix, name, label in _OURS:
        if file.endswith(suffix) and name in ("*", function):
            return label
    return f"other service code ({file.rsplit('/', 1)[-1]}:{function})"


def leaf(stack: list[str]) -> str:
    """The innermost frame of a stack, short: ``function (file)``."""
    function, file = _frame(stack[-1])
    return f"{function} ({'/'.join(file.split('/')[-2:])})"


def cpu_profile(raw: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Samples per bucket, and per innermost frame within each bucket, from
    ``py-spy record --format raw`` output."""
    counts: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            label = bucket(frames)
            counts[label] += int(count)
            leaves.setdefault(label, Counter())[leaf(frames)] += int(count)
    return counts, leaves


# -- tail ------------------------------------------------------------------------------------

Event = tuple[float, float, int]


def _overlaps(intervals: list[Event], start: float, end: float) -> bool:
    """Whether ``[start, end]`` overlaps one of ``intervals`` (sorted by start)."""
    index = bisect.bisect_right(intervals, (end, float("inf"), 0))
    return any(s <= end and e >= start for s, e, _ in intervals[max(0, index - 50) : index])


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def tail_report(raw: dict[str, Any], decisions: int) -> None:
    """Print what the probe recorded and what overlaps the slowest requests."""
    gc_stats, threshold, count = raw.pop("gc_stats"), raw.pop("gc_threshold"), raw.pop("gc_count")
    print(f"gc: thresholds {threshold}, counts now {count}, collections since start", end="")
    print(f" (gen 0/1/2): {[g['collections'] for g in gc_stats]}")
    events: dict[str, list[Event]] = {k: [tuple(e) for e in v] for k, v in raw.items()}
    requests = sorted(events.get("request", []))
    durations = [(e - s) * 1000 for s, e, _ in requests]
    cut = _pct(durations, 99)
    slow = [r for r, d in zip(requests, durations, strict=True) if d >= cut]
    print(
        f"server-side request time (ASGI app, ms): p50 {_pct(durations, 50):.2f}"
        f" p90 {_pct(durations, 90):.2f} p99 {cut:.2f} max {max(durations):.2f}"
        f" ({len(requests):,} requests)"
    )
    waits = [(e - s) * 1000 for s, e, _ in events.get("commit_wait", [])]
    if waits:
        print(
            f"commit wait (audit row queued -> committed, ms): p50 {_pct(waits, 50):.2f}"
            f" p90 {_pct(waits, 90):.2f} p99 {_pct(waits, 99):.2f} max {max(waits):.2f}"
        )
    flushes = events.get("flush", [])
    if flushes:
        times = [(e - s) * 1000 for s, e, _ in flushes]
        rows = [n for _, _, n in flushes]
        print(
            f"audit INSERTs: {len(flushes):,}, {statistics.mean(rows):.1f} rows each (max"
            f" {max(rows)}), round trip p50 {_pct(times, 50):.2f} p99 {_pct(times, 99):.2f}"
            f" max {max(times):.2f} ms"
        )
    lag = [(e - s) * 1000 for s, e, _ in events.get("loop_lag", [])]
    if lag:
        print(
            f"event-loop lag (2 ms sleeper, ms late): p50 {_pct(lag, 50):.2f}"
            f" p99 {_pct(lag, 99):.2f} max {max(lag):.2f}"
        )
    print("events (per decision = total time / decisions; overlap = share of the slowest 1 %")
    print("  of requests that overlap one such event, against all requests):")
    for kind in ("gc0", "gc1", "gc2", "token_lookup", "reconcile", "relay_sweep", "flush"):
        found = sorted(events.get(kind, []))
        if not found:
            print(f"  {kind:<13} none")
            continue
        times = [(e - s) * 1000 for s, e, _ in found]
        slow_hit = sum(_overlaps(found, s, e) for s, e, _ in slow) / max(len(slow), 1)
        all_hit = sum(_overlaps(found, s, e) for s, e, _ in requests) / max(len(requests), 1)
        if kind == "token_lookup":
            sizes = bursts(found)
            print(
                f"  token lookups came in {len(sizes)} bursts (starts within 50 ms):"
                f" mean {statistics.mean(sizes):.1f}, max {max(sizes)} concurrent lookups"
            )
        print(
            f"  {kind:<13} {len(found):>6,} x, mean {statistics.mean(times):6.2f} ms, max"
            f" {max(times):6.2f} ms, {sum(times) * 1000 / max(decisions, 1):5.1f} us/decision;"
            f" overlap slowest 1 %: {slow_hit:4.0%} vs all: {all_hit:4.0%}"
        )
    print("slowest 1 % of requests, by the periodic events they overlapped:")
    for causes, n in slow_causes(events, slow).most_common():
        print(f"  {n / max(len(slow), 1):4.0%}  {causes}")


def bursts(found: list[Event], gap: float = 0.05) -> list[int]:
    """Sizes of the groups of events that started within ``gap`` seconds of the group's
    first (e.g. concurrent token-cache misses)."""
    sizes: list[int] = []
    first = -1.0
    for start, _, _ in sorted(found):
        if sizes and start - first <= gap:
            sizes[-1] += 1
        else:
            sizes.append(1)
            first = start
    return sizes


def slow_causes(events: dict[str, list[Event]], slow: list[Event]) -> Counter[str]:
    """For the slowest requests: which periodic events each one overlapped."""
    kinds = ("gc0", "gc1", "gc2", "token_lookup", "reconcile", "relay_sweep")
    causes: Counter[str] = Counter()
    for s, e, _ in slow:
        hit = [k for k in kinds if _overlaps(sorted(events.get(k, [])), s, e)]
        causes[" + ".join(hit) or "none of these"] += 1
    return causes


# -- variants --------------------------------------------------------------------------------

VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("as configured (token cache 1 s, reconcile 0.5 s)", {}),
    ("token cache 60 s", {"CARACAL_TOKEN_CACHE_SECONDS": "60"}),
    ("reconcile every 60 s", {"CARACAL_PDP_RECONCILE_SECONDS": "60"}),
    (
        "both",
        {"CARACAL_TOKEN_CACHE_SECONDS": "60", "CARACAL_PDP_RECONCILE_SECONDS": "60"},
    ),
]


def variants(url: str, tmp: Path, zone_id: str, rounds: int, seconds: float) -> None:
    """Alternated runs of the plain service (no probe) with the periodic work configured
    away, one setting at a time: how much of the tail each one holds."""
    results: dict[str, list[WrkResult]] = {}
    for _ in range(rounds):
        for label, env in VARIANTS:
            port = free_port()
            proc = start_server(url, port, tmp / "data", env=env, output=subprocess.DEVNULL)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_for(lambda b=base: httpx.get(f"{b}/ready", timeout=1).status_code == 200)
                target = f"{base}/v1/zones/{zone_id}/decisions"
                run_wrk(target, decision_script(), tmp, seconds=2)
                results.setdefault(label, []).append(
                    run_wrk(target, decision_script(), tmp, seconds=seconds)
                )
            finally:
                stop(proc)
    print(f"\nvariants ({rounds} alternated runs each, medians; wrk latency in ms):")
    for label, found in results.items():
        med = {k: statistics.median(getattr(r, k) for r in found) for k in ("p50", "p90", "p99")}
        rps = statistics.median(r.rps for r in found)
        p99s = ", ".join(f"{r.p99:.1f}" for r in found)
        print(
            f"  {label:<50} {rps:>7,.0f} req/s  p50 {med['p50']:5.2f}  p90 {med['p90']:5.2f}"
            f"  p99 {med['p99']:6.2f} (runs: {p99s})"
        )


# -- driver ----------------------------------------------------------------------------------


def main() -> None:
    """Serve under the probe, run the timing phase, then the py-spy phase."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--leaves", type=int, default=0, help="top innermost frames per bucket")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw stacks to this file")
    parser.add_argument(
        "--variants", type=int, default=0, help="rounds of the periodic-work variants (0: none)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-profile-"))
    out = tmp / "probe.json"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with embedded_postgres(tmp / "pg") as (url, pg_data):
            proc = start_server(
                url,
                port,
                tmp / "data",
                launcher=[sys.executable, str(PROBE)],
                env={"PEER_PROBE_OUT": str(out)},
            )
            try:
                wait_for(lambda: httpx.get(f"{base}/ready", timeout=1).status_code == 200)
                zone_id = set_up_zone(base, verbose=False)
                target = f"{base}/v1/zones/{zone_id}/decisions"
                script = decision_script()
                run_wrk(target, script, tmp, seconds=3)  # warm-up
                # 1. timing
                proc.send_signal(signal.SIGUSR1)
                cpu0, pg0 = tree_cpu_seconds(proc.pid), tree_cpu_seconds(postmaster_pid(pg_data))
                timed = run_wrk(target, script, tmp, seconds=args.duration)
                cpu1, pg1 = tree_cpu_seconds(proc.pid), tree_cpu_seconds(postmaster_pid(pg_data))
                proc.send_signal(signal.SIGUSR2)
                time.sleep(0.5)
                cpu_us = cpu_between(cpu0, cpu1) / timed.requests * 1e6
                pg_us = cpu_between(pg0, pg1) / timed.requests * 1e6
                print(
                    f"timing phase (probe on): {timed.rps:,.0f} req/s, p50 {timed.p50:.2f}"
                    f" p90 {timed.p90:.2f} p99 {timed.p99:.2f} max {timed.max:.2f} ms (wrk);"
                    f" worker CPU {cpu_us:.0f} us/decision, PostgreSQL {pg_us:.0f} us/decision"
                )
                tail_report(json.loads(out.read_text()), timed.requests)
                # 2. CPU
                py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                raw = tmp / "profile.txt"
                spy_args = ["record", "--pid", str(proc.pid), "--rate", str(args.rate)]
                spy_args += ["--duration", str(int(args.duration)), "--format", "raw"]
                spy = subprocess.Popen(
                    [py_spy, *spy_args, "-o", str(raw), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                cpu0 = tree_cpu_seconds(proc.pid)
                profiled = run_wrk(target, script, tmp, seconds=args.duration - 1)
                cpu_us = cpu_between(cpu0, tree_cpu_seconds(proc.pid)) / profiled.requests * 1e6
                spy.wait(timeout=60)
                counts, leaves = cpu_profile(raw)
                total = sum(counts.values())
                if args.keep:
                    shutil.copy(raw, args.keep)
                print(
                    f"\nCPU phase (py-spy, {total:,} samples): {profiled.rps:,.0f} req/s,"
                    f" worker CPU {cpu_us:.0f} us/decision; GC time is inside the frame that"
                    " allocated (see gc* above)"
                )
                for label, n in counts.most_common():
                    print(f"  {n / total * cpu_us:6.1f} us  {n / total:5.1%}  {label}")
                    for where, m in leaves[label].most_common(args.leaves):
                        print(f"  {'':>6}    {m / total * cpu_us:6.1f} us  {where}")
            finally:
                stop(proc)
            if args.variants:
                variants(url, tmp, zone_id, args.variants, args.duration)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
