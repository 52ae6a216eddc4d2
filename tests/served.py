"""``python -m controlplane serve`` as a child process: the real entry point, with its uvicorn
options, against a given database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.redis_fixture import free_port

TOKEN = "fault-test-admin-token-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def serve_process(database_url: str, data_dir: Path, **extra: str) -> Iterator[str]:
    """``python -m controlplane serve`` on a free port; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update(
        DATABASE_URL=database_url,
        CARACAL_DATA_DIR=str(data_dir),
        CARACAL_ADMIN_TOKEN=TOKEN,
        CARACAL_ARGON2_MEMORY_COST="1024",
        CARACAL_DRAIN_SECONDS="0",
        CARACAL_LOG_LEVEL="WARNING",
        **extra,
    )
    log = (data_dir.parent / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {log.name}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
