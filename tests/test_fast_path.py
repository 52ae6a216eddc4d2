"""The decision routes' fast path answers every request exactly as Litestar does.

Two apps on one database, one with the fast path (the default) and one without
(``CARACAL_HTTP_FAST_PATH=false``), get the same requests; status, headers, body and the
access log line must be the same (request ids made by the service aside)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.http.fast_path import FastPath
from tests.api.policy_helpers import ALLOW, active_set
from tests.api.test_decision_batch import refuse_decision_rows
from tests.conftest import ADMIN_TOKEN, TEST_KEK, bearer, make_settings

GENERATED = "<generated>"


@pytest.fixture
def slow_client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The same service with the fast path off: every request goes through Litestar."""
    settings = make_settings(database_url, tmp_path / "slow", http_fast_path=False)
    app = create_app(settings, kek=TEST_KEK)
    with TestClient(app, raise_server_exceptions=False) as other:
        other.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield other


def fast_path_of(client: TestClient) -> FastPath:
    handler = client.app.asgi_handler
    assert isinstance(handler.app, FastPath)
    return handler.app


def _normalised(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with each service-made request id replaced by its order of appearance."""
    if isinstance(value, dict):
        return {
            k: (ids.setdefault(v, f"id{len(ids)}") if k == "request_id" else _normalised(v, ids))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalised(v, ids) for v in value]
    return value


def answer(client: TestClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """What a caller sees: status, headers (but the date), body, with made ids normalised."""
    response = client.request(method, url, **kwargs)
    given = {k.lower(): v for k, v in kwargs.get("headers", {}).items()}.get("x-request-id")
    ids = {response.headers["x-request-id"]: "http-id"}
    try:
        body = _normalised(response.json(), ids)
    except ValueError:
        body = response.text
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date",)]
    headers = [(k, GENERATED if k == "x-request-id" and v != given else v) for k, v in headers]
    return {"status": response.status_code, "headers": headers, "body": body}


def test_every_answer_of_the_decision_routes_is_the_same_either_way(
    client: TestClient,
    slow_client: TestClient,
    make_zone: Any,
    zone_token: Any,
    db: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    zone = make_zone()["id"]
    inactive = make_zone()["id"]
    active_set(client, zone, ALLOW)
    token = zone_token(zone)
    one, many = f"/v1/zones/{zone}/decisions", f"/v1/zones/{zone}/decisions/batch"
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", one, {"json": {"input": {"a": 1}}}),
        ("POST", one, {"json": {"input": {"a": 1}}, "headers": {"X-Request-Id": "mine-1"}}),
        ("POST", one, {"json": {"input": {}}, "headers": {"X-Request-Id": "x" * 129}}),
        ("POST", one, {"json": {"input": {}}, "headers": {"X-Request-Id": "bad id"}}),
        ("POST", many, {"json": {"inputs": [{"a": 1}, {"b": 2}]}}),
        ("POST", one, {"json": {"input": {}}, "headers": bearer(token)}),
        (
            "POST",
            f"/v1/zones/{inactive}/decisions",
            {"json": {"input": {}}, "headers": bearer(token)},
        ),
        ("POST", one, {"json": {"input": {}}, "headers": {"Authorization": "Bearer nope-nope"}}),
        ("POST", one, {"json": {"input": {}}, "headers": {"Authorization": "Basic abc"}}),
        ("POST", f"/v1/zones/{inactive}/decisions", {"json": {"input": {}}}),
        ("POST", f"/v1/zones/{inactive}/decisions/batch", {"json": {"inputs": [{}]}}),
        ("POST", "/v1/zones/no-such-zone/decisions", {"json": {"input": {}}}),
        ("POST", "/v1/zones/a%00b/decisions", {"json": {"input": {}}}),
        ("POST", one, {"content": b""}),
        ("POST", one, {"content": b"{nope"}),
        ("POST", one, {"content": b"\xff\xfe"}),
        ("POST", one, {"json": {"input": {}, "sign": "true"}}),
        ("POST", one, {"json": {"input": [], "other": 1}}),
        ("POST", one, {"json": {"input": {"s": {"session": 1}}, "nested": [[[[]]]]}}),
        ("POST", one, {"json": {"input": {"session": {"id": "s", "expires_at": "x"}}}}),
        ("POST", one, {"content": b'{"input": ' + b"[" * 70 + b"]" * 70 + b"}"}),
        ("POST", one, {"content": b'{"input": {"k": "' + b"x" * (1024 * 1024) + b'"}}'}),
        ("POST", many, {"json": {"inputs": []}}),
        ("POST", many, {"json": {"inputs": [{}, {"session": {"id": "unknown"}}]}}),
        ("POST", one + "?x=1", {"json": {"input": {}}}),
        ("POST", one + "?x=%00", {"json": {"input": {}}}),
        ("POST", one + "/", {"json": {"input": {}}}),
        ("GET", one, {}),
        ("PUT", many, {"json": {"inputs": [{}]}}),
        ("POST", one, {"json": {"input": {}}, "headers": {"Host": "bad host/"}}),
    ]
    for method, url, kwargs in cases:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="controlplane.access"):
            fast = answer(client, method, url, **kwargs)
            slow = answer(slow_client, method, url, **kwargs)
        assert fast == slow, (method, url, kwargs.get("headers"))
        lines = [
            (r.getMessage(), r.method, r.path, r.status)  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "controlplane.access"
        ]
        assert len(lines) == 2 and lines[0] == lines[1], lines
    # The fast path did serve the decision routes (and only those).
    served = {h.handler_name for h, a in fast_path_of(client)._routes.items() if a is not None}
    assert served == {"decide", "decide_batch"}


def test_a_failed_audit_write_is_the_same_503_either_way(
    client: TestClient, slow_client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    refuse_decision_rows(db)
    for url, body in (
        (f"/v1/zones/{z}/decisions", {"input": {}}),
        (f"/v1/zones/{z}/decisions/batch", {"inputs": [{}, {}]}),
    ):
        fast = answer(client, "POST", url, json=body, headers={"X-Request-Id": "r"})
        slow = answer(slow_client, "POST", url, json=body, headers={"X-Request-Id": "r"})
        assert fast == slow
        assert fast["status"] == 503 and fast["body"]["error"] == "audit_unavailable"
