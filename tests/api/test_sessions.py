"""Sessions (read-only): list filters, derived status, keyset pagination, get one."""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from tests.api.runtime_rows import insert_session, now

ROW_KEYS = {
    "id",
    "zone_id",
    "session_type",
    "subject_id",
    "parent_id",
    "status",
    "expires_at",
    "authenticated_at",
    "created_at",
}


def url(zone_id: str, query: str = "") -> str:
    return f"/v1/zones/{zone_id}/sessions" + (f"?{query}" if query else "")


def walk(client: TestClient, zone_id: str, query: str, between: Any = None) -> list[str]:
    """Every id of every page, following next_cursor."""
    seen: list[str] = []
    cursor = None
    while True:
        q = query + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url(zone_id, q)).json()
        seen += [row["id"] for row in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        if between is not None:
            between()


def test_empty_zone_lists_nothing(client: TestClient, zone: dict[str, Any]) -> None:
    response = client.get(url(zone["id"]))
    assert response.status_code == 200
    assert response.json() == {"rows": [], "next_cursor": None}


def test_rows_have_the_contract_shape_and_derived_status(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z, t = zone["id"], now()
    insert_session(db, z, "session-id", created_at=t - timedelta(seconds=3))
    insert_session(
        db,
        z,
        "s-expired",
        created_at=t - timedelta(seconds=2),
        expires_at=t - timedelta(seconds=1),
    )
    insert_session(
        db,
        z,
        "s-revoked-and-expired",
        created_at=t - timedelta(seconds=1),
        expires_at=t - timedelta(seconds=1),
        revoked_at=t,
    )
    insert_session(
        db, z, "s-child", parent_id="session-id", session_type="delegated", subject_id="agent-7"
    )
    rows = client.get(url(z)).json()["rows"]
    assert [r["id"] for r in rows] == [
        "s-child",
        "s-revoked-and-expired",
        "s-expired",
        "session-id",
    ]
    assert all(set(r) == ROW_KEYS for r in rows)
    status = {r["id"]: r["status"] for r in rows}
    assert status == {
        "s-child": "active",
        "s-revoked-and-expired": "revoked",
        "s-expired": "expired",
        "session-id": "active",
    }
    child = rows[0]
    assert child["zone_id"] == z
    assert child["parent_id"] == "session-id"
    assert child["session_type"] == "delegated"
    assert child["subject_id"] == "agent-7"
    assert child["created_at"].endswith("Z") and child["expires_at"].endswith("Z")


def test_status_and_subject_filters(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z, t = zone["id"], now()
    insert_session(db, z, "a-active", subject_id="alice")
    insert_session(db, z, "a-expired", subject_id="alice", expires_at=t - timedelta(seconds=1))
    insert_session(db, z, "a-revoked", subject_id="alice", revoked_at=t)
    insert_session(db, z, "b-active", subject_id="bob")

    def ids(query: str) -> set[str]:
        response = client.get(url(z, query))
        assert response.status_code == 200, response.text
        return {row["id"] for row in response.json()["rows"]}

    assert ids("status=active") == {"a-active", "b-active"}
    assert ids("status=expired") == {"a-expired"}
    assert ids("status=revoked") == {"a-revoked"}
    assert ids("subject_id=alice") == {"a-active", "a-expired", "a-revoked"}
    assert ids("subject_id=alice&status=active") == {"a-active"}
    assert ids("subject_id=nobody") == set()


def test_active_turns_expired_at_read_time(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    insert_session(db, z, "short", expires_at=now() + timedelta(hours=1))
    assert client.get(url(z, "status=active")).json()["rows"][0]["status"] == "active"
    db.execute("UPDATE sessions SET expires_at = now() - interval '1 ms' WHERE id = 'short'")
    assert client.get(url(z, "status=active")).json()["rows"] == []
    assert client.get(url(z, "status=expired")).json()["rows"][0]["id"] == "short"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", ["limit"]),
        ("limit=1001", ["limit"]),
        ("limit=ten", ["limit"]),
        ("limit=1e2", ["limit"]),
        ("limit=1.0", ["limit"]),
        ("limit=%2B5", ["limit"]),
        ("status=gone", ["status"]),
        ("subject_id=a%00b", ["subject_id"]),
    ],
)
def test_bad_query_values_are_invalid_query(
    client: TestClient, zone: dict[str, Any], query: str, path: list[str]
) -> None:
    response = client.get(url(zone["id"], query))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_query"
    assert body["issues"][0]["path"] == path


def test_limit_defaults_to_100_and_accepts_1_and_1000(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z, t = zone["id"], now()
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO sessions (zone_id, id, session_type, subject_id, expires_at, created_at)"
            " VALUES (%s, %s, 'user', 'u', %s, %s)",
            [
                (z, f"s{i:04d}", t + timedelta(hours=1), t - timedelta(seconds=i))
                for i in range(101)
            ],
        )
    body = client.get(url(z)).json()
    assert len(body["rows"]) == 100 and body["next_cursor"] is not None
    assert len(client.get(url(z, "limit=1")).json()["rows"]) == 1
    body = client.get(url(z, "limit=1000")).json()
    assert len(body["rows"]) == 101 and body["next_cursor"] is None


def test_pages_cover_every_row_once_in_order_with_equal_timestamps(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z, t = zone["id"], now()
    expected = []
    for i in range(23):
        created = t - timedelta(seconds=i // 4)  # groups of four share created_at
        insert_session(db, z, f"sess-{i:02d}", created_at=created)
        expected.append((created, f"sess-{i:02d}"))
    expected.sort(reverse=True)
    assert walk(client, z, "limit=5") == [sid for _, sid in expected]
    assert walk(client, z, "limit=5&status=active") == [sid for _, sid in expected]


def test_paging_is_stable_while_rows_are_inserted(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any], database_url: str
) -> None:
    z, t = zone["id"], now()
    existing = [f"old-{i:03d}" for i in range(60)]
    for i, sid in enumerate(existing):
        insert_session(db, z, sid, created_at=t - timedelta(seconds=60 - i // 3))
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO sessions (zone_id, id, session_type, subject_id, expires_at)"
                    " VALUES (%s, %s, 'user', 'u', now() + interval '1 hour')",
                    (z, f"new-bg-{n}"),
                )
                n += 1

    counter = iter(range(1000))

    def insert_between_pages() -> None:
        insert_session(db, z, f"new-fg-{next(counter)}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = walk(client, z, "limit=7", between=insert_between_pages)
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert [sid for sid in seen if sid.startswith("old-")] == sorted(existing, reverse=True)
    # rows newer than the first page's position never appear on later pages
    assert all(sid in seen[:7] for sid in seen if sid.startswith("new-"))


def test_cursor_tampering_and_foreign_cursors_are_invalid_cursor(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    for i in range(3):
        insert_session(db, zone["id"], f"s{i}", created_at=now() - timedelta(seconds=i))
        insert_session(db, other["id"], f"s{i}", created_at=now() - timedelta(seconds=i))
    cursor = client.get(url(zone["id"], "limit=1")).json()["next_cursor"]
    foreign = client.get(url(other["id"], "limit=1")).json()["next_cursor"]
    assert client.get(url(zone["id"], f"cursor={cursor}")).status_code == 200
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[9] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in [tampered, foreign, "", "abc", "!!!!", cursor[:-2], cursor + "AA", "A" * 5000]:
        response = client.get(url(zone["id"], f"cursor={bad}"))
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_cursor"


def test_get_one_session(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    insert_session(db, z, "session-id", subject_id="user@example.com")
    response = client.get(f"/v1/zones/{z}/sessions/session-id")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ROW_KEYS
    assert body["id"] == "session-id" and body["status"] == "active"
    response = client.get(f"/v1/zones/{z}/sessions/unknown")
    assert response.status_code == 404
    assert response.json() == {"error": "session_not_found"}


def test_other_zones_sessions_are_invisible(
    client: TestClient, make_zone: Any, db: psycopg.Connection[Any]
) -> None:
    zone, other = make_zone(), make_zone()
    insert_session(db, other["id"], "theirs")
    assert client.get(url(zone["id"])).json()["rows"] == []
    assert client.get(f"/v1/zones/{zone['id']}/sessions/theirs").status_code == 404


def test_unknown_or_archived_zone_is_zone_not_found(client: TestClient, make_zone: Any) -> None:
    archived = make_zone()
    assert client.delete(f"/v1/zones/{archived['id']}").status_code == 204
    for zone_id in ["no-such-zone", archived["id"]]:
        for path in [url(zone_id), f"/v1/zones/{zone_id}/sessions/x"]:
            response = client.get(path)
            assert response.status_code == 404
            assert response.json() == {"error": "zone_not_found"}
