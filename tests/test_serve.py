"""The real entry point: embedded PostgreSQL by default, reuse of its data, SIGTERM drain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from controlplane.db.embedded_postgres import database_url_for
from controlplane.settings import load_settings
from tests.conftest import stderr_of

TOKEN = "serve-test-admin-token-0001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start(data_dir: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.pop("DATABASE_URL", None)
    env.update(
        CARACAL_DATA_DIR=str(data_dir),
        CARACAL_ADMIN_TOKEN=TOKEN,
        CARACAL_DRAIN_SECONDS="1.5",
        CARACAL_ARGON2_MEMORY_COST="1024",
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_with_embedded_postgres_drains_on_sigterm_and_keeps_data(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    proc = start(data_dir, port)
    try:
        assert wait_for(f"{base}/health").json() == {"ok": True}
        assert httpx.get(f"{base}/ready").json() == {"ok": True, "draining": False}
        zone = httpx.post(f"{base}/v1/zones", json={"name": "Kept"}, headers=auth)
        assert zone.status_code == 201, zone.text
        zone_id = zone.json()["id"]

        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{base}/ready")
        assert ready.status_code == 503
        assert ready.json() == {"ok": False, "draining": True}
        # in-flight and new requests are still served while draining
        assert httpx.get(f"{base}/v1/zones/{zone_id}", headers=auth).status_code == 200
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = stderr_of(proc)
    assert "using embedded PostgreSQL" in stderr
    assert "embedded PostgreSQL stopped" in stderr
    assert "Traceback" not in stderr
    assert TOKEN not in stderr

    proc = start(data_dir, port)
    try:
        wait_for(f"{base}/health")
        again = httpx.get(f"{base}/v1/zones/{zone_id}", headers=auth)
        assert again.status_code == 200
        assert again.json()["name"] == "Kept"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stderr_of(proc)


def test_admin_token_cli_prints_a_working_token(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.pop("DATABASE_URL", None)
    env["CARACAL_DATA_DIR"] = str(data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "admin-token", "create", "--scope", "global",
         "--name", "ops", "--ttl", "1h"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("cpk_")
    assert "scope=global" in result.stderr
    token_id = result.stderr.split("id=", 1)[1].split()[0]
    bad = subprocess.run(
        [sys.executable, "-m", "controlplane", "admin-token", "create", "--scope", "zone"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--zone" in bad.stderr
    port = free_port()
    proc = start(data_dir, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/zones", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stderr_of(proc)
    # the CLI's creation is audited like the API's (a global token: no zone)
    settings = load_settings({"CARACAL_DATA_DIR": str(data_dir)})
    with database_url_for(settings) as url, psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT metadata_json FROM audit_events WHERE event_type = 'admin_token.created'"
        ).fetchall()
    assert [r[0]["token_id"] for r in rows] == [token_id]


def test_several_workers_serve_and_log_every_request(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(data_dir, port, CARACAL_WORKERS="2")
    try:
        wait_for(f"{base}/health")
        for index in range(4):
            response = httpx.get(
                f"{base}/v1/zones",
                headers={"Authorization": f"Bearer {TOKEN}", "X-Request-Id": f"w-{index}"},
            )
            assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    stderr = stderr_of(proc)
    logged = [line for line in stderr.splitlines() if '"request_id":"w-' in line]
    assert len(logged) == 4, stderr[-2000:]
    assert "Traceback" not in stderr
