"""``serve --workers 2``: one scrape of any worker reports the sum over all workers
(prometheus_client's multiprocess mode); stale files are cleaned at start-up and a killed
worker's live gauges leave the sums."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from controlplane.pdp import get_template
from tests.metrics.scrape import parse, value
from tests.test_serve import free_port, wait_for

TOKEN = "workers-metrics-token-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTE = "/v1/zones/{zone_id}/decisions"


def serve(database_url: str, port: int, metrics_dir: Path, log: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARACAL_", "PROMETHEUS"))}
    env.update(
        DATABASE_URL=database_url,
        CARACAL_ADMIN_TOKEN=TOKEN,
        CARACAL_DATA_DIR=str(log.parent / "data"),
        CARACAL_METRICS_DIR=str(metrics_dir),
        CARACAL_LOG_LEVEL="WARNING",
        CARACAL_DRAIN_SECONDS="0",
    )
    with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "controlplane", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stderr=stderr,
            text=True,
        )


def fresh(url: str, **kwargs: object) -> httpx.Response:
    """One request on its own connection (the kernel spreads connections over workers)."""
    with httpx.Client(timeout=10) as client:
        return client.request(url=url, **kwargs)  # type: ignore[arg-type]


def zone_with_active_set(base: str) -> str:
    with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
        z = client.post("/v1/zones", json={"name": "workers"}).json()["id"]
        content = get_template("role-based").content  # type: ignore[union-attr]
        policy = client.post(f"/v1/zones/{z}/policies", json={"name": "rbac", "content": content})
        pset = client.post(f"/v1/zones/{z}/policy-sets", json={"name": "s"}).json()
        version = client.post(
            f"/v1/zones/{z}/policy-sets/{pset['id']}/versions",
            json={"manifest": [{"policy_version_id": policy.json()["version"]["id"]}]},
        ).json()
        activated = client.post(
            f"/v1/zones/{z}/policy-sets/{pset['id']}/activate", json={"version_id": version["id"]}
        )
        assert activated.status_code == 202, activated.text
    return z


def pids_with(metrics_dir: Path, prefix: str) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob(f"{prefix}_*.db")}


def test_a_scrape_of_any_worker_sums_all_workers(database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by an earlier run")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(database_url, port, metrics_dir, tmp_path / "serve.log")
    try:
        wait_for(f"{base}/health")
        assert not (metrics_dir / "counter_999999.db").exists()  # cleaned at start-up
        z = zone_with_active_set(base)
        decisions = 40
        for _ in range(decisions):
            answer = fresh(f"{base}/v1/zones/{z}/decisions", method="POST", headers=AUTH,
                           json={"input": {"subject": {"roles": ["viewer"]}}})  # fmt: skip
            assert answer.status_code == 200, answer.text
        workers = pids_with(metrics_dir, "counter")
        assert len(workers) == 2, workers  # both workers answered some
        for _ in range(6):  # whichever worker answers the scrape, it reports both
            scraped = parse(fresh(f"{base}/metrics", method="GET").text)
            answered = sum(
                value(scraped, "caracal_decisions_total", decision=d, source="api")
                for d in ("allow", "deny", "partial")
            )
            assert answered == decisions
            assert value(scraped, "caracal_http_requests_total", method="POST", route=ROUTE,
                         status="200") == decisions  # fmt: skip
            assert value(scraped, "caracal_decision_duration_seconds_count") == decisions
            assert value(scraped, "caracal_db_pool_connections", state="idle") >= 2
        # A worker killed outright never marks itself: a live one reaps its live gauges.
        victim = sorted(pids_with(metrics_dir, "gauge_livesum"))[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in pids_with(metrics_dir, "gauge_livesum"):
            assert time.monotonic() < deadline, "the dead worker's live gauges stayed"
            time.sleep(0.2)
        wait_for(f"{base}/health")
        scraped = parse(fresh(f"{base}/metrics", method="GET").text)
        assert value(scraped, "caracal_decision_duration_seconds_count") == decisions  # kept
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    # each worker marked itself dead on its way out: no live gauges remain on file
    assert not pids_with(metrics_dir, "gauge_livesum")
