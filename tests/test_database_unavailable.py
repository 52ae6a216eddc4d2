"""The API when its database connections break or cannot be made (in-process, fast).

Backends are terminated with ``pg_terminate_backend`` (what a server restart does to them);
``ALLOW_CONNECTIONS false`` makes the database refuse new connections. The kill -9 of a
real server under load is in ``tests/faults/test_database_outage.py``.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from tests.api.policy_helpers import ALLOW, active_set


def _terminate_backends(db: psycopg.Connection[Any]) -> int:
    rows = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    time.sleep(0.1)  # the goodbyes reach the client sockets
    return len(rows)


def _allow_connections(server_url: str, database_url: str, allowed: bool) -> None:
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                psycopg.sql.Identifier(str(name)), psycopg.sql.Literal(allowed)
            )
        )


def test_connections_broken_by_a_restart_are_replaced_without_failing_requests(
    client: TestClient, db: psycopg.Connection[Any], zone: dict[str, Any]
) -> None:
    for _ in range(3):  # the pool holds connections that have been used
        assert client.get(f"/v1/zones/{zone['id']}").status_code == 200
    assert _terminate_backends(db) >= 1
    for _ in range(3):
        response = client.get(f"/v1/zones/{zone['id']}")
        assert response.status_code == 200, response.text
        assert client.get("/ready").status_code == 200


def test_decisions_after_the_connections_broke(
    client: TestClient, db: psycopg.Connection[Any], zone: dict[str, Any]
) -> None:
    active_set(client, zone["id"], ALLOW)
    url = f"/v1/zones/{zone['id']}/decisions"
    assert client.post(url, json={"input": {}}).status_code == 200
    _terminate_backends(db)  # the audit writer's connection too
    response = client.post(url, json={"input": {}}, headers={"X-Request-Id": "after-kill"})
    assert response.status_code == 200, response.text
    assert db.execute(
        "SELECT count(*) AS n FROM audit_events WHERE request_id = 'after-kill'"
    ).fetchone() == {"n": 1}


@pytest.fixture
def refusing(pg_server_url: str, database_url: str, db: psycopg.Connection[Any]) -> Any:
    """Call to make the test database refuse new connections and drop the open ones (but
    the test's own ``db``); connections are allowed again after the test."""

    def refuse() -> None:
        _allow_connections(pg_server_url, database_url, False)
        _terminate_backends(db)

    try:
        yield refuse
    finally:
        _allow_connections(pg_server_url, database_url, True)


def test_an_unreachable_database_is_a_quick_503_on_every_kind_of_route(
    client: TestClient, db: psycopg.Connection[Any], zone: dict[str, Any], refusing: Any
) -> None:
    active_set(client, zone["id"], ALLOW)
    decide = f"/v1/zones/{zone['id']}/decisions"
    assert client.post(decide, json={"input": {}}).status_code == 200
    refusing()
    for method, path, body in [
        ("GET", f"/v1/zones/{zone['id']}", None),
        ("GET", "/v1/zones", None),
        ("POST", "/v1/zones", {"name": "During the outage"}),
        ("POST", decide, {"input": {}}),
    ]:
        started = time.monotonic()
        response = client.request(method, path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"] in {"database_unavailable", "audit_unavailable"}
        assert response.headers["retry-after"] == "1"
        assert elapsed < 3.0, (path, elapsed)
    started = time.monotonic()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert time.monotonic() - started < 1.0


def test_service_answers_again_at_once_when_the_database_is_back(
    client: TestClient,
    zone: dict[str, Any],
    refusing: Any,
    pg_server_url: str,
    database_url: str,
) -> None:
    refusing()
    assert client.get(f"/v1/zones/{zone['id']}").status_code == 503
    time.sleep(3)  # longer than the pool keeps retrying on its own
    _allow_connections(pg_server_url, database_url, True)
    back = time.monotonic()
    response = client.get(f"/v1/zones/{zone['id']}")
    assert response.status_code == 200, response.text
    assert client.get("/ready").status_code == 200
    assert time.monotonic() - back < 2.0


def test_a_decision_whose_audit_row_failed_says_so(
    client: TestClient, db: psycopg.Connection[Any], zone: dict[str, Any], refusing: Any
) -> None:
    active_set(client, zone["id"], ALLOW)
    decide = f"/v1/zones/{zone['id']}/decisions"
    assert client.post(decide, json={"input": {}}).status_code == 200  # zone and token cached
    refusing()
    response = client.post(decide, json={"input": {}}, headers={"X-Request-Id": "lost-1"})
    assert response.status_code == 503
    assert response.json() == {
        "error": "audit_unavailable",
        "detail": "the decision was not recorded; retry",
    }


def test_fault_settings_are_validated() -> None:
    from controlplane.settings import SettingsError, load_settings

    settings = load_settings(
        {
            "CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS": "0.5",
            "CARACAL_MAX_HEADER_BYTES": "8192",
            "CARACAL_HEADER_TIMEOUT_SECONDS": "5",
            "CARACAL_BODY_TIMEOUT_SECONDS": "20",
        }
    )
    assert (
        settings.db_acquire_timeout_seconds,
        settings.max_header_bytes,
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
    ) == (0.5, 8192, 5.0, 20.0)
    defaults = load_settings({})
    assert defaults.db_acquire_timeout_seconds == 2.0 and defaults.max_header_bytes == 65536
    for variable, value in [
        ("CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS", "0"),
        ("CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS", "inf"),
        ("CARACAL_MAX_HEADER_BYTES", "100"),
        ("CARACAL_HEADER_TIMEOUT_SECONDS", "-1"),
    ]:
        with pytest.raises(SettingsError, match=variable):
            load_settings({variable: value})
