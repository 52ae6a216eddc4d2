"""The admin-token guard on every route: 401s, and zone tokens confined to their zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from uuid6 import uuid7

from tests.conftest import bearer

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def v1_routes(app: Litestar) -> Iterator[tuple[str, str, str]]:
    """(method, path template, scope) of every /v1 route."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in {"HEAD", "OPTIONS"}:
                    continue
                yield method, route.path, handler.opt.get("scope", "zone")


def fill(path: str, zone_id: str) -> str:
    """Substitute zone_id and a random UUID for every other parameter."""
    return _PARAM.sub(lambda m: zone_id if m.group(1) == "zone_id" else str(uuid7()), path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PATCH", "PUT"}:
        kwargs["json"] = {}
    return client.request(method, path, **kwargs)


def test_the_app_has_routes_to_check(client: TestClient) -> None:
    routes = list(v1_routes(client.app))
    assert ("GET", "/v1/zones", "global") in routes
    assert any(scope == "zone" for _, _, scope in routes)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ",
        "Basic dGVzdDp0ZXN0",
        "Bearer unknown-token-000000000",
        "Bearer cpk_" + "A" * 43,
        "bearer\tx",
    ],
)
def test_every_protected_route_answers_401_without_a_valid_token(
    client: TestClient, zone: dict[str, Any], header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    client.headers.pop("Authorization", None)
    for method, path, scope in v1_routes(client.app):
        if scope == "public":
            continue
        response = call(client, method, fill(path, zone["id"]), headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {"error": "invalid_admin_token"}


def test_zone_token_is_confined_to_its_zone_on_every_route(
    client: TestClient, make_zone: Any, zone_token: Any
) -> None:
    mine, other = make_zone(), make_zone()
    token = zone_token(mine["id"])
    checked = 0
    for method, path, scope in v1_routes(client.app):
        if scope == "public":
            continue
        # another zone's routes, and global routes: 403 before anything else
        if "{zone_id" in path:
            response = call(client, method, fill(path, other["id"]), bearer(token))
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"error": "admin_token_zone_mismatch"}
            # an unknown zone is "another zone" too: no existence oracle
            response = call(client, method, fill(path, "no-such-zone"), bearer(token))
            assert response.status_code == 403, (method, path, response.text)
        if scope == "global":
            response = call(client, method, fill(path, mine["id"]), bearer(token))
            assert response.status_code == 403, (method, path, response.text)
        else:
            # its own zone: the guard lets it through (whatever the handler then says)
            response = call(client, method, fill(path, mine["id"]), bearer(token))
            assert response.status_code not in {401, 403}, (method, path, response.text)
        checked += 1
    assert checked >= 5


def test_zone_token_cannot_list_or_create_zones_or_tokens(
    client: TestClient, zone: dict[str, Any], zone_token: Any
) -> None:
    headers = bearer(zone_token(zone["id"]))
    assert client.get("/v1/zones", headers=headers).status_code == 403
    assert client.post("/v1/zones", json={"name": "x"}, headers=headers).status_code == 403
    assert client.get("/v1/admin-tokens", headers=headers).status_code == 403
    response = client.post("/v1/admin-tokens", json={"scope": "global"}, headers=headers)
    assert response.status_code == 403
    assert client.get(f"/v1/zones/{zone['id']}", headers=headers).json()["id"] == zone["id"]


def test_public_routes_need_no_token(client: TestClient) -> None:
    client.headers.pop("Authorization", None)
    assert client.get("/health").json() == {"ok": True}
    assert client.get("/ready").json() == {"ok": True, "draining": False}
    assert client.get("/schema/openapi.json").status_code == 200
