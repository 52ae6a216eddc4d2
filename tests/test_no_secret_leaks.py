"""No secret value escapes: response bodies, log output, audit rows and plain database columns.

Applications (given and generated secrets, DCR, PATCH) and providers (nested secrets in
``config_json`` and ``secret_config``, PATCH, failing requests) are exercised with
recognisable secret values. The only place a secret may appear is the one-time
``client_secret`` of the response that generated it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from controlplane.logs import JsonFormatter

MARK = f"LEAKCHECK{uuid7().hex}"


def secret(n: int) -> str:
    return f"{MARK}-{n}"


class Recorder:
    """Calls the API and keeps every response body."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.bodies: list[tuple[str, int, str]] = []

    def __call__(self, method: str, url: str, body: Any = None) -> Any:
        response = self.client.request(method, url, json=body)
        self.bodies.append((f"{method} {url}", response.status_code, response.text))
        return response


def exercise(api: Recorder, zone_id: str) -> list[tuple[int, str]]:
    """Drive every secret-carrying path; return (response index, secret) of generated ones."""
    generated: list[tuple[int, str]] = []
    apps = f"/v1/zones/{zone_id}/applications"

    def keep_generated(response: Any) -> dict[str, Any]:
        body = response.json()
        if "client_secret" in body:
            generated.append((len(api.bodies) - 1, body["client_secret"]))
        return body

    given = api("POST", apps, {"name": "a", "registration_method": "managed",
                               "credential_type": "token", "client_secret": secret(1)})  # fmt: skip
    assert given.status_code == 201
    keep_generated(api("POST", apps, {"name": "b", "registration_method": "managed",
                                      "credential_type": "password"}))  # fmt: skip
    public = keep_generated(api("POST", apps, {"name": "c", "registration_method": "managed"}))
    keep_generated(api("POST", f"{apps}/register", {"name": "d", "credential_type": "token"}))
    api("POST", f"{apps}/register", {"name": "e", "credential_type": "password",
                                     "client_secret": secret(2), "expires_in": 60})  # fmt: skip
    api("PATCH", f"{apps}/{given.json()['id']}", {"client_secret": secret(3), "name": "a2"})
    keep_generated(api("PATCH", f"{apps}/{public['id']}", {"credential_type": "token"}))
    # failing requests carrying secrets
    api("POST", apps, {"name": "", "registration_method": "managed", "client_secret": secret(4)})
    api("POST", apps, {"name": "f", "registration_method": "x", "client_secret": secret(5)})
    api("PATCH", f"{apps}/{uuid7()}", {"client_secret": secret(6)})
    api("PATCH", f"{apps}/{public['id']}", {"client_secret": secret(7), "colour": "red"})
    api("GET", apps)
    api("GET", f"{apps}/{given.json()['id']}")

    providers = f"/v1/zones/{zone_id}/providers"
    created = api("POST", providers, {
        "identifier": "github", "kind": "oauth2",
        "config_json": {"token_url": "https://t", "client_secret": secret(10),
                        "auth": {"private_key": secret(11), "user": "u"},
                        "list": [{"api_key": secret(12)}]},
        "secret_config": {"password": secret(13), "credentials": {"inner": secret(14)}},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    provider_url = f"{providers}/{created.json()['id']}"
    api("PATCH", provider_url, {"secret_config": {"password": secret(15), "api_key": None},
                                "config_json": {"auth": {"passphrase": secret(16)}}})  # fmt: skip
    api("POST", providers, {"identifier": "github", "kind": "oauth2",
                            "secret_config": {"token": secret(17)}})  # fmt: skip
    api(
        "POST",
        providers,
        {"identifier": "x", "kind": "saml", "secret_config": {"token": secret(18)}},
    )
    api("PATCH", provider_url, {"kind": "bad", "secret_config": {"token": secret(19)}})
    api("GET", providers)
    api("GET", provider_url)
    api("DELETE", provider_url)
    return generated


def test_no_secret_value_leaks(
    client: TestClient, make_zone: Any, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    zone = make_zone(dcr_enabled=True)
    api = Recorder(client)
    generated = exercise(api, zone["id"])
    assert len(generated) == 3
    statuses = [status for _, status, _ in api.bodies]
    assert statuses.count(201) == 6 and 400 in statuses and 409 in statuses

    # responses: no supplied secret anywhere; a generated one only in the response that made it
    for index, (call, _, text) in enumerate(api.bodies):
        assert MARK not in text, call
        for made_at, value in generated:
            assert (value in text) == (index == made_at), call

    # logs, as the JSON lines the service writes
    formatter = JsonFormatter()
    log_text = "\n".join(formatter.format(record) for record in caplog.records)
    assert caplog.records
    audit = str(db.execute("SELECT * FROM audit_events").fetchall())
    assert "application.created" in audit and "provider.updated" in audit

    # every column of every table (bytea as hex): ciphertext and hashes only
    tables = [
        row["tablename"]
        for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    stored = "\n".join(
        str(db.execute(f'SELECT row_to_json(t)::text AS j FROM "{name}" t').fetchall())
        for name in tables
    )
    assert "providers" in tables and "applications" in tables
    values = [value for _, value in generated] + [MARK, MARK.encode().hex()]
    for value in values:
        assert value not in log_text
        assert value not in audit
        assert value not in stored
