"""The error envelope for everything that can go wrong, and never a 500 for input."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
from litestar import get
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.http.errors import msgspec_issue
from controlplane.json_depth import nesting_depth
from tests.api.test_auth_matrix import fill, v1_routes
from tests.conftest import ADMIN_TOKEN, TEST_KEK


def test_unknown_route_is_not_found(client: TestClient) -> None:
    for path in ("/v1/nope", "/nope", "/v1/zones/z/nope/deeper"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found"}
        assert response.headers["x-request-id"]


def test_wrong_method_is_method_not_allowed(client: TestClient) -> None:
    response = client.put("/v1/zones", json={})
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed"}


def test_body_over_one_mebibyte_is_payload_too_large(client: TestClient) -> None:
    body = json.dumps({"name": "x" * (1024 * 1024)})
    response = client.post("/v1/zones", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "content",
    [b"{", b"not json", b"[]", b'"a string"', b"42", b"null", b"", b"\xff\xfe", b'{"name": "a",}'],
)
def test_malformed_or_non_object_bodies_are_invalid_body(
    client: TestClient, content: bytes
) -> None:
    response = client.post(
        "/v1/zones", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["error"] == "invalid_body"
    assert isinstance(payload["issues"], list) and payload["issues"]


def test_error_body_has_only_the_envelope_keys(client: TestClient) -> None:
    payload = client.post("/v1/zones", json={"name": 1}).json()
    assert set(payload) <= {"error", "issues", "detail"}
    assert set(payload["issues"][0]) == {"path", "message"}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("Expected `str`, got `int` - at `$.data.name`", ["name"]),
        ("Expected `str` matching regex '^[a-z]+$' - at `$.data.scopes[2]`", ["scopes", 2]),
        ("Object contains unknown field `x` - at `$.data.config`", ["config", "x"]),
        ("Object missing required field `name` - at `$.data`", []),
        ("Expected `int` - at `$.data.items[0].count`", ["items", 0, "count"]),
        ("Number out of range - at `$.data.config_json[...]`", ["config_json"]),
        ("Expected `str` - at `$.data.m[...].x`", ["m"]),
    ],
)
def test_msgspec_paths_become_lists(text: str, path: list[Any]) -> None:
    assert msgspec_issue(text).path == path


def test_a_missing_body_is_named_as_such(client: TestClient, zone: dict[str, Any]) -> None:
    for path in ("/v1/zones", f"/v1/zones/{zone['id']}/policies"):
        response = client.post(path, content=b"", headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": "invalid_body",
            "issues": [{"path": [], "message": "a JSON body is required"}],
        }


def test_unexpected_exception_is_internal_error_with_request_id(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/boom", opt={"scope": "public"})
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app = create_app(settings, kek=TEST_KEK)
    app.register(boom)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"X-Request-Id": "req-boom"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "request_id=req-boom"}
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert any("secret internals" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


def test_random_garbage_never_yields_a_500(client: TestClient, zone: dict[str, Any]) -> None:
    rng = random.Random(1234)
    bodies: list[bytes] = [
        b"{" * 50,
        b'{"name": ' + b"[" * 200 + b"}",
        json.dumps({"name": "\u0000\ud7ff"}).encode(),
        json.dumps({"a": {"b": {"c": [1, 2, {"d": None}]}}}).encode(),
        json.dumps([{"policy_version_id": "x"}] * 3).encode(),
        json.dumps({"name": "x" * 10_000, "scopes": [None, 1, "ok"]}).encode(),
        b'{"name": "x", "config_json": ' + b'{"a": ' * 500 + b"1" + b"}" * 501,
        b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"name": "\xe9", "content": "\xff", "input": {"a": "\xe9"}}',  # invalid UTF-8
    ]
    bodies += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(5)]
    for method, path, _scope in v1_routes(client.app):
        for body in bodies:
            response = client.request(
                method,
                fill(path, zone["id"]),
                content=body,
                headers={
                    "content-type": "application/json",
                    "Authorization": f"Bearer {ADMIN_TOKEN}",
                },
            )
            assert response.status_code < 500, (method, path, body[:60], response.text)
            if response.status_code >= 400:
                assert set(response.json()) <= {"error", "issues", "detail"}


def nested(depth: int) -> bytes:
    """``{"a": {"a": … 1 … }}``: objects nested ``depth`` levels deep."""
    return b'{"a": ' * (depth - 1) + b'{"a": 1' + b"}" * depth


def test_bodies_nest_at_most_64_levels(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    targets = [  # (route, body wrapping a value nested `depth` levels, counting the body)
        (
            f"/v1/zones/{z}/providers",
            lambda d: (
                b'{"identifier": "p", "kind": "apikey", "config_json": ' + nested(d - 1) + b"}"
            ),
        ),
        (f"/v1/zones/{z}/decisions", lambda d: b'{"input": ' + nested(d - 1) + b"}"),
    ]
    for route, body in targets:
        for depth, deep_enough in ((65, True), (900, True), (64, False)):
            response = client.post(
                route, content=body(depth), headers={"content-type": "application/json"}
            )
            assert response.status_code < 500, (route, depth, response.text)
            issues = response.json().get("issues") or [{}]
            refused = issues[0].get("message") == "JSON nested deeper than 64 levels"
            assert refused is deep_enough, (route, depth, response.text)
    # brackets inside strings do not count
    text = json.dumps(
        {"identifier": "q", "kind": "apikey", "config_json": {"x": "[" * 500}}
    ).encode()
    assert (
        client.post(
            f"/v1/zones/{z}/providers", content=text, headers={"content-type": "application/json"}
        ).status_code
        == 201
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"scope": "global", "expires_in": "3600"}, ["expires_in"]),
        ({"scope": "global", "expires_in": 3600.0}, ["expires_in"]),
        ({"scope": "global", "name": 12}, ["name"]),
    ],
)
def test_wrong_types_are_never_coerced(
    client: TestClient, body: dict[str, Any], path: list[Any]
) -> None:
    response = client.post("/v1/admin-tokens", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path


def test_a_string_boolean_is_a_wrong_type(client: TestClient) -> None:
    response = client.post("/v1/zones", json={"name": "x", "dcr_enabled": "true"})
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["dcr_enabled"]


def test_a_client_that_goes_away_is_not_logged_as_a_server_fault(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from litestar import post

    @post("/echo", opt={"scope": "public"})
    async def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    app = create_app(settings, kek=TEST_KEK)
    app.register(echo)
    events = iter(
        [
            {"type": "http.request", "body": b'{"a": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "root_path": "",
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 3000), "state": {},
    }  # fmt: skip
    import asyncio

    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.getMessage() == "client disconnected" for r in caplog.records)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"s": "[[[[{{{{"}', 1),
        (b'[[["]]", [[[]]], "[["]]]', 6),  # brackets in strings do not count …
        (b'{"a\\"[": ["x\\"]]]"]}', 2),  # … nor with escaped quotes
        (b'[{}, [[]], {"a": {"b": {}}}]', 4),
        (b"[" * 64 + b"]" * 64, 64),
        (b"[" * 65 + b"]" * 65, 65),
        (b"[" * 500 + b"]" * 500, 65),  # counted only to the limit + 1
    ],
)
def test_nesting_depth_ignores_strings_and_stops_past_the_limit(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth
