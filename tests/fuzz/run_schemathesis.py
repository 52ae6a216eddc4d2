"""Fuzz the running service against its own OpenAPI document with Schemathesis.

Starts ``caracal serve`` on the embedded PostgreSQL (a fresh data directory) on a free port,
bootstraps the local zone (it gets an active policy set, so decisions are evaluated), issues
a zone admin token for it, then runs Schemathesis twice with ``tests/fuzz/schemathesis.toml``:

1. with the global admin token, over every operation;
2. with the zone token, over the zone-scoped operations, ``zone_id`` bound to the local zone.

Checks: no server error, every status and content type documented, every response body
matching its schema, every valid body accepted. Exits non-zero on any failure; the service
is stopped either way. Usage: ``.venv/bin/python tests/fuzz/run_schemathesis.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
ZONE_ID = "zone1"
ZONE_ROUTES = "^/v1/zones/\\{zone_id\\}/"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "valid_data_accepted",  # positive_data_acceptance less state-dependent refusals (hooks.py)
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(data_dir: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        CARACAL_DATA_DIR=str(data_dir),
        CARACAL_HOST="127.0.0.1",
        CARACAL_PORT=str(port),
        CARACAL_ADMIN_TOKEN=ADMIN_TOKEN,
        CARACAL_LOCAL_BOOTSTRAP_ENABLED="true",
        CARACAL_LOCAL_ZONE_ID=ZONE_ID,
        CARACAL_LOG_LEVEL="WARNING",
        CARACAL_DRAIN_SECONDS="0.1",
        CARACAL_ARGON2_TIME_COST="1",
        CARACAL_ARGON2_MEMORY_COST="1024",
        CARACAL_ARGON2_PARALLELISM="1",
    )
    with log_file.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "controlplane", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(base: str, service: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"the service exited with {service.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the service did not become ready")


def bootstrap(base: str) -> None:
    """Create the local zone with its active policy set, Dynamic Client Registration on."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.post(f"{base}/v1/local/bootstrap", headers=headers, timeout=30)
    response.raise_for_status()
    response = httpx.patch(
        f"{base}/v1/zones/{ZONE_ID}", headers=headers, json={"dcr_enabled": True}, timeout=30
    )
    response.raise_for_status()


def zone_token(base: str) -> str:
    """A new zone admin token for the local zone."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.post(
        f"{base}/v1/admin-tokens",
        headers=headers,
        json={"name": "fuzz", "scope": "zone", "zone_id": ZONE_ID},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


class Outcome:
    """Test cases generated and failed over the Schemathesis runs."""

    def __init__(self) -> None:
        self.generated = 0
        self.failed = 0
        self.exit_code = 0


def schemathesis(outcome: Outcome, base: str, token: str, *extra: str) -> None:
    """One Schemathesis run (its output passed through) with ``token``."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/schema/openapi.json",
        "--url",
        base,
        "--checks",
        CHECKS,
        *extra,
    ]
    print("$", " ".join(command), flush=True)
    env = {
        **os.environ,
        "CARACAL_FUZZ_ZONE_ID": ZONE_ID,
        "CARACAL_FUZZ_TOKEN": token,  # the config's Authorization header
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
    }
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    for line in run.stdout:
        print(line, end="", flush=True)
        counts = _CASES.search(line)
        if counts:
            outcome.generated += int(counts["generated"])
            outcome.failed += int(counts["failed"] or 0)
    outcome.exit_code |= run.wait()


_CASES = re.compile(r"(?P<generated>\d+) generated, (?:(?P<failed>\d+) found|\d+ passed)")


def stop_service(service: subprocess.Popen[bytes]) -> None:
    if service.poll() is None:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()


def main() -> int:
    started = time.monotonic()
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="caracal-fuzz-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = Path(tmp) / "service.log"
        service = start_service(Path(tmp) / "data", port, log_file)
        try:
            wait_ready(base, service)
            bootstrap(base)
            schemathesis(outcome, base, ADMIN_TOKEN)
            # The token is issued now: the first run may have revoked any token it listed.
            bootstrap(base)
            schemathesis(outcome, base, zone_token(base), "--include-path-regex", ZONE_ROUTES)
        finally:
            stop_service(service)
            log = log_file.read_text(errors="replace")
            if "Traceback" in log:
                print("--- service log ---", log[-20_000:], sep="\n")
    seconds = time.monotonic() - started
    print(f"schemathesis: {outcome.generated} test cases in {seconds:.0f} s")
    failed = outcome.failed or (1 if outcome.exit_code else 0)
    print(f"fuzz: {outcome.generated - outcome.failed} passed, {failed} failed")
    return 1 if outcome.exit_code else 0


if __name__ == "__main__":
    sys.exit(main())
