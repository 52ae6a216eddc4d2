"""``GET /metrics`` of a running app on a real PostgreSQL: every metric after real work,
bounded labels, the optional bearer token, and the switch that removes the route."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.metrics.endpoint import render_metrics
from tests.api.policy_helpers import (
    ADMIN_ONLY,
    ALLOW,
    activate,
    active_set,
    create_policy,
    create_set_version,
)
from tests.conftest import ADMIN_TOKEN, TEST_KEK, bearer, make_settings
from tests.metrics.scrape import Samples, parse, total, value

DECISIONS_ROUTE = "/v1/zones/{zone_id}/decisions"


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_scrape_after_real_work_shows_every_metric(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    before = scrape(client)
    first = active_set(client, z, ADMIN_ONLY)
    decide = f"/v1/zones/{z}/decisions"
    admin = {"input": {"subject": {"roles": ["admin"]}}}
    assert client.post(decide, json=admin).json()["decision"] == "allow"
    assert client.post(decide, json=admin).json()["decision"] == "allow"
    assert client.post(decide, json={"input": {"subject": {"roles": []}}}).json()["decision"] == (
        "deny"
    )
    # A second activation replaces the set this process had loaded: an activation lag.
    allow = create_policy(client, z, ALLOW, name="allow")
    second = create_set_version(client, z, first["set"]["id"], [allow["version"]["id"]])
    activate(client, z, first["set"]["id"], second["id"])
    assert client.get("/v1/zones", headers={}).status_code == 200  # the client's own token
    assert client.get("/v1/zones", headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/zones", headers=bearer("cpk_" + "x" * 43)).status_code == 401
    assert client.get(f"/no/such/path/{z}").status_code == 404
    wait_until(
        lambda: (
            db.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL").fetchone()[
                "n"
            ]  # type: ignore[index]
            == 0
        )
    )
    wait_until(  # the relay counts its backlog once a sweep (1 s) after draining
        lambda: value(scrape(client), "caracal_outbox_publish_lag_seconds_count",
                      publisher="pg_notify")
        >= value(before, "caracal_outbox_publish_lag_seconds_count", publisher="pg_notify") + 2
    )  # fmt: skip
    time.sleep(1.2)
    after = scrape(client)

    every_metric = {
        "caracal_decisions_total", "caracal_decision_duration_seconds_count",
        "caracal_policy_evaluation_duration_seconds_count", "caracal_audit_write_batch_rows_count",
        "caracal_audit_write_duration_seconds_count", "caracal_outbox_pending_messages",
        "caracal_outbox_publish_lag_seconds_count", "caracal_policy_activation_lag_seconds_count",
        "caracal_policy_sets_loaded", "caracal_http_requests_total",
        "caracal_http_request_duration_seconds_count", "caracal_db_pool_connections",
        "caracal_admin_auth_failures_total",
    }  # fmt: skip
    assert every_metric <= set(after), every_metric - set(after)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # decisions: by outcome and source, handler and evaluation time
    assert delta("caracal_decisions_total", decision="allow", source="api") == 2
    assert delta("caracal_decisions_total", decision="deny", source="api") == 1
    for outcome in ("allow", "deny", "partial"):  # every series exists, at zero if need be
        assert (
            frozenset({"decision": outcome, "source": "batch"}.items())
            in after["caracal_decisions_total"]
        )
    assert delta("caracal_decision_duration_seconds_count") == 3
    assert 0 < delta("caracal_decision_duration_seconds_sum") < 3 * 5.0
    assert delta("caracal_policy_evaluation_duration_seconds_count") == 3
    evaluation = delta("caracal_policy_evaluation_duration_seconds_sum")
    assert 0 < evaluation < delta("caracal_decision_duration_seconds_sum")
    # the audit writer's group commit
    assert delta("caracal_audit_write_batch_rows_sum") == 3
    assert 1 <= delta("caracal_audit_write_batch_rows_count") <= 3
    assert delta("caracal_audit_write_duration_seconds_count") == delta(
        "caracal_audit_write_batch_rows_count"
    )
    # the outbox: drained, and both activations published through NOTIFY
    assert value(after, "caracal_outbox_pending_messages") == 0
    assert delta("caracal_outbox_publish_lag_seconds_count", publisher="pg_notify") >= 2
    assert delta("caracal_outbox_publish_lag_seconds_sum", publisher="pg_notify") < 2 * 10.0
    # the PDP: one activation replaced a loaded set; the zone has a compiled set
    assert delta("caracal_policy_activation_lag_seconds_count") == 1
    assert 0 <= delta("caracal_policy_activation_lag_seconds_sum") < 5.0
    assert value(after, "caracal_policy_sets_loaded") >= 1
    # HTTP: route templates, never raw paths
    ok = {"method": "POST", "route": DECISIONS_ROUTE}
    assert delta("caracal_http_requests_total", **ok, status="200") == 3
    assert delta("caracal_http_request_duration_seconds_count", **ok) == 3
    assert delta("caracal_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("caracal_http_requests_total", method="GET", route="/v1/zones", status="401") == 2
    # the pool and the guard
    assert (
        total(after, "caracal_db_pool_connections", state="idle")
        + total(after, "caracal_db_pool_connections", state="busy")
        >= 1
    )
    assert value(after, "caracal_db_pool_connections", state="waiting") >= 0
    assert delta("caracal_admin_auth_failures_total", reason="missing") == 1
    assert delta("caracal_admin_auth_failures_total", reason="invalid") == 1


def test_labels_never_carry_zone_ids_tokens_or_raw_paths(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    client.post(f"/v1/zones/{z}/decisions", json={"input": {"subject": {"id": "alice-42"}}})
    client.get(f"/v1/zones/{z}/policies/{'0' * 8}-0000-0000-0000-{'0' * 12}")
    client.get(f"/unknown/{z}", headers=bearer(ADMIN_TOKEN))
    client.request("BREW", f"/v1/zones/{z}")
    text = client.get("/metrics").text
    for secret_or_tenant in (z, ADMIN_TOKEN, "alice-42", "BREW", "/unknown"):
        assert secret_or_tenant not in text
    series = [dict(key) for key in parse(text)["caracal_http_requests_total"]]
    routes = {labels["route"] for labels in series}
    assert {"/v1/zones/{zone_id}/decisions", "/v1/zones/{zone_id}/policies/{policy_id}"} <= routes
    assert "unmatched" in routes
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert {"method": "other", "route": "unmatched", "status": "405"} in series


def test_each_guard_refusal_is_counted_by_reason(
    client: TestClient,
    make_zone: Any,
    zone_token: Any,
    db: psycopg.Connection[Any],
) -> None:
    mine, other = make_zone()["id"], make_zone()["id"]
    revoked = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": mine}).json()
    assert client.delete(f"/v1/admin-tokens/{revoked['id']}").status_code == 204
    expired = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": mine}).json()
    db.execute(
        "UPDATE admin_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
        (expired["id"],),
    )
    token = zone_token(mine)
    before = scrape(client)
    assert client.get(f"/v1/zones/{other}", headers=bearer(token)).status_code == 403
    assert client.get("/v1/zones", headers=bearer(token)).status_code == 403
    assert client.get(f"/v1/zones/{mine}", headers=bearer(revoked["token"])).status_code == 401
    assert client.get(f"/v1/zones/{mine}", headers=bearer(expired["token"])).status_code == 401
    assert client.get("/v1/zones", headers={"Authorization": "Basic abc"}).status_code == 401
    after = scrape(client)
    counts = {
        reason: value(after, "caracal_admin_auth_failures_total", reason=reason)
        - value(before, "caracal_admin_auth_failures_total", reason=reason)
        for reason in ("missing", "invalid", "expired", "revoked", "forbidden")
    }
    assert counts == {"missing": 0, "invalid": 1, "expired": 1, "revoked": 1, "forbidden": 2}


@pytest.fixture
def app_with(database_url: str, tmp_path: Path) -> Any:
    def make(**overrides: Any) -> TestClient:
        app = create_app(make_settings(database_url, tmp_path, **overrides), kek=TEST_KEK)
        return TestClient(app, raise_server_exceptions=False)

    return make


def test_a_metrics_token_is_required_when_set(app_with: Any) -> None:
    token = "metrics-scrape-token-0123456789"
    with app_with(metrics_token=token) as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401
        assert missing.json() == {"error": "invalid_metrics_token"}
        assert client.get("/metrics", headers=bearer(token + "x")).status_code == 401
        assert client.get("/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 401
        scraped = client.get("/metrics", headers=bearer(token))
        assert scraped.status_code == 200
        assert "caracal_decisions_total" in scraped.text
        assert token not in scraped.text


def test_metrics_disabled_removes_the_route_and_records_nothing(app_with: Any) -> None:
    with app_with(metrics_enabled=False) as client:
        before = parse(render_metrics().decode())
        response = client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"]
        assert client.get("/health").status_code == 200
        assert client.get("/v1/zones").status_code == 401  # no token: a guard refusal
        after = parse(render_metrics().decode())
    assert after.get("caracal_http_requests_total") == before.get("caracal_http_requests_total")
    assert (
        after["caracal_admin_auth_failures_total"] == (before["caracal_admin_auth_failures_total"])
    )
    with app_with() as client:  # an app with metrics on records again
        assert client.get("/v1/zones").status_code == 401
        again = parse(client.get("/metrics").text)
    assert value(again, "caracal_admin_auth_failures_total", reason="missing") == (
        value(after, "caracal_admin_auth_failures_total", reason="missing") + 1
    )
