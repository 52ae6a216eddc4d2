"""A Redis that hangs (SIGSTOP: connections accepted, nothing answered) rather than refusing.

Decisions and activations do not touch Redis and go on as usual; the relay's tries time out
(2 s) and the rows wait for a retry; once Redis answers again the outbox drains.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from litestar.testing import TestClient

from controlplane.app import create_app
from tests.api.policy_helpers import (
    ALLOW,
    DENY,
    activate,
    active_set,
    create_policy,
    create_set_version,
)
from tests.conftest import ADMIN_TOKEN, TEST_KEK, make_settings

TOPIC = "caracal.policy.invalidate"


def _timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_hung_redis_delays_only_the_outbox(
    redis_server: tuple[str, subprocess.Popen[bytes]],
    database_url: str,
    db: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    url, proc = redis_server
    app = create_app(make_settings(database_url, tmp_path, redis_url=url), kek=TEST_KEK)
    stream = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        zone_id = client.post("/v1/zones", json={"name": "hung redis"}).json()["id"]
        made = active_set(client, zone_id, ALLOW)
        decide = f"/v1/zones/{zone_id}/decisions"
        assert client.post(decide, json={"input": {}}).json()["decision"] == "allow"

        proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(5):
                answer, seconds = _timed(lambda: client.post(decide, json={"input": {}}))
                assert answer.status_code == 200 and seconds < 1.0, (answer.text, seconds)
            deny = create_policy(client, zone_id, DENY, name="deny")
            version = create_set_version(
                client, zone_id, made["set"]["id"], [deny["version"]["id"]]
            )
            activation, seconds = _timed(
                lambda: activate(client, zone_id, made["set"]["id"], version["id"])
            )
            assert seconds < 1.0, seconds
            assert client.post(decide, json={"input": {}}).json()["decision"] == "deny"
            # The relay tries, waits its 2 s, and keeps the row for a retry.
            deadline = time.monotonic() + 15
            while True:
                row = db.execute(
                    "SELECT published_at, last_error FROM outbox WHERE id = %s",
                    (activation["outbox_id"],),
                ).fetchone()
                if row["last_error"] is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert row["published_at"] is None
            assert "redis" in row["last_error"] and "Timeout" in row["last_error"]
        finally:
            proc.send_signal(signal.SIGCONT)

        deadline = time.monotonic() + 15
        while True:
            pending = db.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
            if pending.fetchone()["n"] == 0:
                break
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.1)
    ids = [fields["id"] for _, fields in stream.xrange(TOPIC)]
    assert activation["outbox_id"] in ids
