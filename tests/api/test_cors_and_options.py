"""OPTIONS needs no token; CORS is off unless ``CARACAL_CORS_ORIGINS`` allows origins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.settings import SettingsError, load_settings
from tests.conftest import TEST_KEK, make_settings

APP = "https://console.example.com"


@pytest.mark.parametrize("path", ["/v1/policy-templates", "/v1/zones", "/v1/zones/z1/decisions"])
def test_options_is_answered_without_a_token(client: TestClient, path: str) -> None:
    response = client.options(path, headers={"Authorization": ""})
    assert response.status_code == 204, response.text
    assert "GET" in response.headers["allow"] or "POST" in response.headers["allow"]


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/v1/policy-templates", headers={"Origin": APP})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/v1/zones", headers={"Origin": APP, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
def cors_client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(database_url, tmp_path, cors_origins=(APP,))
    with TestClient(create_app(settings, kek=TEST_KEK), raise_server_exceptions=False) as client:
        yield client


def test_configured_origins_get_cors_headers(cors_client: TestClient) -> None:
    preflight = cors_client.options(
        "/v1/zones",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )
    assert preflight.status_code in {200, 204}, preflight.text
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    response = cors_client.get("/v1/policy-templates", headers={"Origin": APP})
    assert response.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    unauthorized = cors_client.get("/v1/zones", headers={"Origin": APP})
    assert unauthorized.status_code == 401  # CORS lets the browser read it; auth still holds
    assert unauthorized.headers["access-control-allow-origin"] == APP


def test_other_origins_get_none(cors_client: TestClient) -> None:
    response = cors_client.get(
        "/v1/policy-templates", headers={"Origin": "https://evil.example.org"}
    )
    assert "access-control-allow-origin" not in response.headers
    preflight = cors_client.options(
        "/v1/zones",
        headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example.org"


def test_cors_origins_setting_is_validated() -> None:
    assert load_settings(
        {"CARACAL_CORS_ORIGINS": f"{APP}, http://localhost:5173"}
    ).cors_origins == (
        APP,
        "http://localhost:5173",
    )
    with pytest.raises(SettingsError, match="CARACAL_CORS_ORIGINS"):
        load_settings({"CARACAL_CORS_ORIGINS": "https://app.example.com/path"})
