"""The outbox relay: exclusive claims, retries with backoff, crash safety, NOTIFY and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from litestar.testing import TestClient
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.app import create_app
from controlplane.db.pool import Database
from controlplane.outbox.enqueue import EVENTS_CHANNEL, OutboxMessage, enqueue
from controlplane.outbox.publishers import (
    PgNotifyPublisher,
    Publisher,
    PublishError,
    PublisherUnavailable,
    RedisStreamPublisher,
    publishers_for,
)
from controlplane.outbox.relay import Relay, backoff_seconds
from controlplane.settings import load_settings
from tests.api.policy_helpers import active_set
from tests.conftest import ADMIN_TOKEN, TEST_KEK, make_settings, stderr_of
from tests.redis_fixture import free_port, redis_url  # noqa: F401 (fixture)

TOPIC = "caracal.test.topic"


class Recorder:
    """A publisher that records what it sends, optionally failing some ids."""

    name = "recorder"

    def __init__(self, fail: set[str] | None = None, delay: float = 0.0) -> None:
        self.seen: list[str] = []
        self.fail = fail or set()
        self.delay = delay

    async def publish(self, conn: Any, message: OutboxMessage) -> None:
        if message.id in self.fail:
            raise PublishError("boom")
        await asyncio.sleep(self.delay)
        self.seen.append(message.id)

    async def close(self) -> None:
        return None


def make_zone_row(db: psycopg.Connection[Any]) -> str:
    zone_id = f"z{uuid7().hex[:12]}"
    db.execute(
        "INSERT INTO zones (id, org_id, name, slug) VALUES (%s, 'default', %s, %s)",
        (zone_id, zone_id, zone_id),
    )
    return zone_id


def insert_rows(db: psycopg.Connection[Any], zone_id: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        row_id = str(uuid7())
        db.execute(
            "INSERT INTO outbox (zone_id, id, topic, payload) VALUES (%s, %s, %s, %s)",
            (zone_id, row_id, TOPIC, Jsonb({"n": i})),
        )
        ids.append(row_id)
    return ids


def drain_with(database_url: str, *publisher_sets: list[Publisher], batch: int = 7) -> list[int]:
    """Run one relay per publisher list, all at once, until each finds nothing to do."""

    async def main() -> list[int]:
        dbs = [Database(database_url, 1, 2) for _ in publisher_sets]
        for database in dbs:
            await database.open()
        relays = [
            Relay(database, publishers, batch_size=batch)
            for database, publishers in zip(dbs, publisher_sets, strict=True)
        ]
        try:
            return list(await asyncio.gather(*(relay.drain() for relay in relays)))
        finally:
            for relay in relays:
                await relay.close()  # the publishers' connections
            for database in dbs:
                await database.close()

    return asyncio.run(main())


def notified_ids(listener: psycopg.Connection[Any], expected: int, timeout: float = 5) -> list[str]:
    ids = [
        json.loads(n.payload)["id"]
        for n in listener.notifies(timeout=timeout, stop_after=expected or None)
    ]
    return ids


@pytest.fixture
def listener(database_url: str) -> Any:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
    yield conn
    conn.close()


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(a) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_seconds(50) == 60.0


def test_enqueue_writes_a_pending_row(database_url: str, db: psycopg.Connection[Any]) -> None:
    zone_id = make_zone_row(db)

    async def main() -> str:
        database = Database(database_url, 1, 1)
        await database.open()
        try:
            async with database.transaction() as conn:
                return await enqueue(conn, zone_id=zone_id, topic=TOPIC, payload={"a": 1})
        finally:
            await database.close()

    outbox_id = asyncio.run(main())
    row = db.execute("SELECT * FROM outbox WHERE id = %s", (outbox_id,)).fetchone()
    assert (row["zone_id"], row["topic"], row["payload"]) == (zone_id, TOPIC, {"a": 1})
    assert (row["published_at"], row["attempts"], row["last_error"]) == (None, 0, None)


def test_two_relays_at_once_publish_each_row_exactly_once(
    database_url: str, db: psycopg.Connection[Any], listener: Any
) -> None:
    zone_id = make_zone_row(db)
    ids = insert_rows(db, zone_id, 120)
    first, second = Recorder(delay=0.001), Recorder(delay=0.001)
    counts = drain_with(database_url, [PgNotifyPublisher(), first], [PgNotifyPublisher(), second])
    assert sum(counts) == 120
    assert all(count > 0 for count in counts), counts  # both relays really worked
    assert not set(first.seen) & set(second.seen)
    assert sorted(first.seen + second.seen) == sorted(ids)
    notified = notified_ids(listener, 120)
    assert sorted(notified) == sorted(ids)
    rows = db.execute("SELECT published_at, attempts FROM outbox").fetchall()
    assert all(r["published_at"] is not None and r["attempts"] == 1 for r in rows)


def test_a_failing_publisher_keeps_the_row_for_a_retry(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    zone_id = make_zone_row(db)
    ids = insert_rows(db, zone_id, 3)
    recorder = Recorder(fail={ids[1]})
    assert drain_with(database_url, [recorder]) == [3]
    assert recorder.seen == [ids[0], ids[2]]
    row = db.execute(
        "SELECT published_at, attempts, last_error, next_attempt_at > now() AS later"
        " FROM outbox WHERE id = %s",
        (ids[1],),
    ).fetchone()
    assert row["published_at"] is None
    assert row["attempts"] == 1
    assert row["last_error"] == "recorder: PublishError: boom"
    assert row["later"] is True
    # Not due yet: nothing to claim.
    assert drain_with(database_url, [recorder]) == [0]
    recorder.fail.clear()
    db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = %s", (ids[1],))
    assert drain_with(database_url, [recorder]) == [1]
    row = db.execute(
        "SELECT published_at, attempts, last_error FROM outbox WHERE id = %s", (ids[1],)
    ).fetchone()
    assert row["published_at"] is not None
    assert (row["attempts"], row["last_error"]) == (2, None)


class Unreachable:
    """A publisher whose destination is down: every call fails as unreachable."""

    name = "unreachable"

    def __init__(self) -> None:
        self.calls = 0

    async def publish(self, conn: Any, message: OutboxMessage) -> None:
        self.calls += 1
        raise PublisherUnavailable("connection refused")

    async def close(self) -> None:
        return None


def test_an_unreachable_publisher_is_tried_once_per_batch(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    zone_id = make_zone_row(db)
    insert_rows(db, zone_id, 5)
    down = Unreachable()
    assert drain_with(database_url, [down]) == [5]
    assert down.calls == 1  # not once per row: each try could wait for a timeout
    rows = db.execute("SELECT published_at, attempts, last_error FROM outbox").fetchall()
    assert all(r["published_at"] is None and r["attempts"] == 1 for r in rows)
    assert all(r["last_error"].startswith("unreachable: PublisherUnavailable") for r in rows)


_STALLING_RELAY = """
import asyncio, os
from controlplane.db.pool import Database
from controlplane.outbox.publishers import PgNotifyPublisher
from controlplane.outbox.relay import Relay

class Stall:
    name = "stall"
    count = 0

    async def publish(self, conn, message):
        self.count += 1
        if self.count == 5:
            print("stalled", flush=True)
            await asyncio.sleep(3600)

    async def close(self):
        pass

async def main():
    db = Database(os.environ["DATABASE_URL"], 1, 1)
    await db.open()
    await Relay(db, [PgNotifyPublisher(), Stall()], batch_size=50).drain()

asyncio.run(main())
"""


def test_killing_the_relay_mid_batch_loses_nothing(
    database_url: str, db: psycopg.Connection[Any], listener: Any
) -> None:
    zone_id = make_zone_row(db)
    ids = insert_rows(db, zone_id, 20)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STALLING_RELAY],
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        text=True,
    )
    with proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "stalled"
        finally:
            proc.kill()
    # Four messages went through pg_notify before the kill: none was delivered.
    assert notified_ids(listener, 0, timeout=0.3) == []
    pending = db.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    assert pending.fetchone()["n"] == 20
    recorder = Recorder()
    deadline = time.monotonic() + 10
    while len(recorder.seen) < 20 and time.monotonic() < deadline:
        drain_with(database_url, [PgNotifyPublisher(), recorder])  # until the dead claim is gone
    assert sorted(recorder.seen) == sorted(ids)
    assert sorted(notified_ids(listener, 20)) == sorted(ids)


def test_notify_refuses_oversized_messages(database_url: str, db: psycopg.Connection[Any]) -> None:
    zone_id = make_zone_row(db)
    db.execute(
        "INSERT INTO outbox (zone_id, id, topic, payload) VALUES (%s, %s, %s, %s)",
        (zone_id, uuid7(), TOPIC, Jsonb({"blob": "x" * 9000})),
    )
    assert drain_with(database_url, [PgNotifyPublisher()]) == [1]
    row = db.execute("SELECT published_at, last_error FROM outbox").fetchone()
    assert row["published_at"] is None
    assert "exceeds the NOTIFY limit" in row["last_error"]


def test_the_api_process_relays_activation_messages(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    outbox_id = active_set(client, zone["id"], "package caracal.authz\nresult := true\n")[
        "activation"
    ]["outbox_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT published_at, attempts FROM outbox WHERE id = %s", (outbox_id,)
        ).fetchone()
        if row["published_at"] is not None:
            assert row["attempts"] == 1
            return
        time.sleep(0.02)
    raise AssertionError("the in-process relay did not publish the activation")


def test_relay_command_runs_alone(database_url: str, db: psycopg.Connection[Any]) -> None:
    zone_id = make_zone_row(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "relay"],
        env={**env, "DATABASE_URL": database_url},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ids = insert_rows(db, zone_id, 3)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pending = db.execute(
                "SELECT count(*) AS n FROM outbox WHERE id = ANY(%s::uuid[])"
                " AND published_at IS NULL",
                (ids,),
            ).fetchone()["n"]
            if pending == 0:
                break
            time.sleep(0.05)
        assert pending == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = stderr_of(proc)
    assert "relay running" in stderr
    assert "relay stopped" in stderr
    assert "Traceback" not in stderr


# -- Redis Streams ------------------------------------------------------------------------------


def test_redis_streams_publisher_xadds_every_message(
    redis_url: str,  # noqa: F811
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    zone_id = make_zone_row(db)
    ids = insert_rows(db, zone_id, 5)
    publishers = publishers_for(load_settings({}, database_url=database_url, redis_url=redis_url))
    assert [p.name for p in publishers] == ["pg_notify", "redis_streams"]
    assert drain_with(database_url, publishers) == [5]
    with redis.Redis.from_url(redis_url, decode_responses=True) as stream:
        entries = stream.xrange(TOPIC)
    assert [fields["id"] for _, fields in entries] == ids
    first = entries[0][1]
    assert first["zone_id"] == zone_id
    assert first["topic"] == TOPIC
    assert json.loads(first["payload"]) == {"n": 0}
    assert first["created_at"]


def test_unreachable_redis_keeps_rows_for_retry(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    zone_id = make_zone_row(db)
    insert_rows(db, zone_id, 2)
    dead = RedisStreamPublisher(f"redis://127.0.0.1:{free_port()}/0")
    assert drain_with(database_url, [dead]) == [2]
    rows = db.execute("SELECT published_at, attempts, last_error FROM outbox").fetchall()
    for row in rows:
        assert row["published_at"] is None
        assert row["attempts"] == 1
        assert row["last_error"].startswith(
            "redis_streams: PublisherUnavailable: redis: ConnectionError"
        )
    # the second row was not sent to the dead Redis again (each try can wait 2 s)
    assert sorted(r["last_error"].endswith("(not tried again in this batch)") for r in rows) == [
        False,
        True,
    ]


def test_activation_reaches_the_redis_stream(
    redis_url: str,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(database_url, tmp_path, redis_url=redis_url), kek=TEST_KEK)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        zone_id = client.post("/v1/zones", json={"name": "streamed"}).json()["id"]
        made = active_set(client, zone_id, "package caracal.authz\nresult := true\n")
        outbox_id = made["activation"]["outbox_id"]
        deadline = time.monotonic() + 5
        entries: list[Any] = []
        with redis.Redis.from_url(redis_url, decode_responses=True) as stream:
            while time.monotonic() < deadline and not entries:
                entries = stream.xrange("caracal.policy.invalidate")
                time.sleep(0.02)
    assert [fields["id"] for _, fields in entries] == [outbox_id]
    payload = json.loads(entries[0][1]["payload"])
    assert payload["version_id"] == made["version"]["id"]
    assert payload["zone_id"] == zone_id


def test_prune_deletes_only_old_published_rows(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    zone_id = make_zone_row(db)
    old, recent, pending = insert_rows(db, zone_id, 3)
    db.execute("UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = %s", (old,))
    db.execute("UPDATE outbox SET published_at = now() WHERE id = %s", (recent,))

    async def main() -> int:
        database = Database(database_url, 1, 1)
        await database.open()
        try:
            return await Relay(database, []).prune()
        finally:
            await database.close()

    assert asyncio.run(main()) == 1
    left = {str(r["id"]) for r in db.execute("SELECT id FROM outbox").fetchall()}
    assert left == {recent, pending}
