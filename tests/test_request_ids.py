"""Request ids: generated UUIDv7, validated and echoed, recorded in audit and in the log line."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from controlplane.logs import JsonFormatter


def test_a_uuid7_is_generated_when_absent(client: TestClient) -> None:
    request_id = client.get("/health").headers["x-request-id"]
    assert uuid.UUID(request_id).version == 7


def test_a_valid_incoming_id_is_echoed(client: TestClient) -> None:
    for value in ("abc", "req-123:/x", "x" * 128):
        assert (
            client.get("/health", headers={"X-Request-Id": value}).headers["x-request-id"] == value
        )


@pytest.mark.parametrize("value", ["x" * 129, "has space", "tab\there", "é"])
def test_an_invalid_incoming_id_is_replaced(client: TestClient, value: str) -> None:
    response = client.get("/health", headers={"X-Request-Id": value.encode("utf-8")})
    echoed = response.headers["x-request-id"]
    assert echoed != value
    assert uuid.UUID(echoed).version == 7


def test_errors_carry_the_request_id_too(client: TestClient) -> None:
    response = client.get("/v1/nope", headers={"X-Request-Id": "req-404"})
    assert response.headers["x-request-id"] == "req-404"
    client.headers.pop("Authorization")
    assert (
        client.get("/v1/zones", headers={"X-Request-Id": "r401"}).headers["x-request-id"] == "r401"
    )


def test_the_audit_event_records_the_request_id(client: TestClient, db: Any) -> None:
    zone_id = client.post(
        "/v1/zones", json={"name": "R"}, headers={"X-Request-Id": "rid-9"}
    ).json()["id"]
    row = db.execute(
        "SELECT request_id FROM audit_events WHERE zone_id = %s", (zone_id,)
    ).fetchone()
    assert row["request_id"] == "rid-9"


def test_one_structured_log_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="controlplane.access"):
        client.get("/v1/zones", headers={"X-Request-Id": "log-1"})
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "log-1"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "GET"
    assert line["path"] == "/v1/zones"
    assert line["status"] == 200
    assert line["request_id"] == "log-1"
    assert isinstance(line["duration_ms"], float)
