"""Decisions: the embedded PDP over HTTP — combination, shadow, audit, freshness, signing."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient

from controlplane.app import create_app
from tests.api.policy_helpers import (
    ADMIN_ONLY,
    ALLOW,
    DENY,
    activate,
    active_set,
    create_policy,
    create_set,
    create_set_version,
)
from tests.conftest import ADMIN_TOKEN, TEST_KEK, bearer, make_settings

RESPONSE_KEYS = {
    "decision", "reasons", "granted_scopes", "obligations", "step_up", "policy_set_version_id",
    "determining_policies", "request_id",
}  # fmt: skip


def partial(scopes: list[str], reason: str) -> str:
    return (
        "package caracal.authz\n\nresult := "
        + json.dumps({"decision": "partial", "granted_scopes": scopes, "reasons": [reason]})
        + "\n"
    )


OBLIGED = (
    'package caracal.authz\n\nresult := {"allow": true, "reasons": ["ok"],'
    ' "obligations": {"log": "full"}}\n'
)
UNDEFINED = "package caracal.authz\n\nimport rego.v1\n\nresult if input.never_there\n"
BAD_SHAPE = 'package caracal.authz\n\nresult := "yes"\n'


def allow_and_deny_versions(
    client: TestClient, zone_id: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A set with two versions: one allowing everything, one denying everything."""
    pset = create_set(client, zone_id)
    allow_v = create_set_version(
        client, zone_id, pset["id"], [create_policy(client, zone_id)["version"]["id"]]
    )
    deny_v = create_set_version(
        client, zone_id, pset["id"], [create_policy(client, zone_id, DENY)["version"]["id"]]
    )
    return pset, allow_v, deny_v


def decide(client: TestClient, zone_id: str, input: dict[str, Any], **extra: Any) -> Any:
    return client.post(f"/v1/zones/{zone_id}/decisions", json={"input": input, **extra})


def test_no_active_set_is_409_and_unknown_zone_404(
    client: TestClient, zone: dict[str, Any]
) -> None:
    response = decide(client, zone["id"], {})
    assert response.status_code == 409
    assert response.json()["error"] == "no_active_policy_set"
    response = decide(client, "no-such-zone", {})
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}


def test_allow_response_and_audit_event(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    made = active_set(client, z, OBLIGED)
    response = decide(client, z, {"requested_scopes": ["read", "write"], "api_key": "s3cret"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["decision"] == "allow"
    assert body["reasons"] == ["ok"]
    assert body["granted_scopes"] == ["read", "write"]
    assert body["obligations"] == {"log": "full"}
    assert body["step_up"] is None
    assert body["policy_set_version_id"] == made["version"]["id"]
    policy = made["policies"][0]
    assert body["determining_policies"] == [
        {"policy_id": policy["id"], "policy_version_id": policy["version"]["id"]}
    ]
    assert body["request_id"] == response.headers["x-request-id"]
    # The event is durable when the response arrives.
    event = db.execute(
        "SELECT * FROM audit_events WHERE event_type = 'decision' AND request_id = %s",
        (body["request_id"],),
    ).fetchone()
    assert event["zone_id"] == z
    assert event["decision"] == "allow"
    assert event["evaluation_status"] == "complete"
    assert str(event["policy_set_id"]) == made["set"]["id"]
    assert str(event["policy_set_version_id"]) == made["version"]["id"]
    assert event["manifest_sha"] == made["version"]["manifest_sha256"]
    assert event["determining_policies_json"] == body["determining_policies"]
    assert event["diagnostics_json"] == []
    assert event["shadow_decision"] is None
    assert event["metadata_json"]["input"]["api_key"] == "[REDACTED]"
    assert event["metadata_json"]["input"]["requested_scopes"] == ["read", "write"]
    by_request = client.get(f"/v1/zones/{z}/audit/by-request/{body['request_id']}").json()
    assert [e["event_type"] for e in by_request] == ["decision"]
    assert by_request[0]["manifest_sha"] == made["version"]["manifest_sha256"]


def test_deny_overrides_and_reports_the_denying_policies(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    made = active_set(client, z, ALLOW, ADMIN_ONLY, DENY)
    body = decide(client, z, {"subject": {"roles": ["admin"]}}).json()
    assert body["decision"] == "deny"
    assert body["granted_scopes"] == []
    deny = made["policies"][2]
    assert body["determining_policies"] == [
        {"policy_id": deny["id"], "policy_version_id": deny["version"]["id"]}
    ]


def test_role_input_decides(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, ADMIN_ONLY)
    assert decide(client, z, {"subject": {"roles": ["admin"]}}).json()["reasons"] == ["admin"]
    denied = decide(client, z, {"subject": {"roles": ["viewer"]}}).json()
    assert (denied["decision"], denied["reasons"]) == ("deny", ["not_admin"])


def test_partial_intersects_granted_scopes(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW, partial(["a", "b", "c"], "one"), partial(["c", "b"], "two"))
    body = decide(client, z, {"requested_scopes": ["a", "b", "c", "d"]}).json()
    assert body["decision"] == "partial"
    assert body["granted_scopes"] == ["b", "c"]
    assert body["reasons"] == ["one", "two"]
    assert len(body["determining_policies"]) == 2


def test_failing_policies_deny_with_diagnostics(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    made = active_set(client, z, ALLOW, UNDEFINED, BAD_SHAPE)
    response = decide(client, z, {})
    body = response.json()
    assert body["decision"] == "deny"
    assert {p["policy_id"] for p in body["determining_policies"]} == {
        made["policies"][1]["id"],
        made["policies"][2]["id"],
    }
    event = db.execute(
        "SELECT evaluation_status, diagnostics_json FROM audit_events WHERE request_id = %s",
        (body["request_id"],),
    ).fetchone()
    assert event["evaluation_status"] == "error"
    diagnostics = event["diagnostics_json"]
    assert [d["policy_version_id"] for d in diagnostics] == [
        made["policies"][1]["version"]["id"],
        made["policies"][2]["version"]["id"],
    ]
    assert "undefined" in diagnostics[0]["error"]
    assert set(diagnostics[1]) == {"policy_id", "policy_version_id", "error"}


def test_engine_messages_do_not_carry_the_inputs_secrets_into_the_audit(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    quoting = "package caracal.authz\n\nresult := input.application.client_secret + 1 > 0\n"
    made = active_set(client, z, quoting)
    shadow_set = create_set(client, z)
    shadow_version = create_set_version(
        client, z, shadow_set["id"], [made["policies"][0]["version"]["id"]]
    )
    activate(
        client, z, made["set"]["id"], made["version"]["id"], shadow_version_id=shadow_version["id"]
    )
    secret = "sk_live_SUPERSECRET_4242"
    body = decide(client, z, {"application": {"client_secret": secret}}).json()
    assert body["decision"] == "deny"
    event = db.execute(
        "SELECT diagnostics_json, metadata_json FROM audit_events WHERE request_id = %s",
        (body["request_id"],),
    ).fetchone()
    assert event["diagnostics_json"] and "[REDACTED]" in event["diagnostics_json"][0]["error"]
    assert event["metadata_json"]["shadow"]["diagnostics"]
    assert secret not in json.dumps(event, default=str)
    detail = client.get(f"/v1/zones/{z}/audit/by-request/{body['request_id']}").text
    assert secret not in detail


def test_shadow_runs_observe_only(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    pset, allow_v, deny_v = allow_and_deny_versions(client, z)
    activate(client, z, pset["id"], allow_v["id"], shadow_version_id=deny_v["id"])
    body = decide(client, z, {}).json()
    assert body["decision"] == "allow"
    assert body["policy_set_version_id"] == allow_v["id"]
    event = db.execute(
        "SELECT * FROM audit_events WHERE request_id = %s", (body["request_id"],)
    ).fetchone()
    assert event["decision"] == "allow"
    assert event["shadow_decision"] == "deny"
    assert str(event["shadow_policy_set_version_id"]) == deny_v["id"]
    assert event["metadata_json"]["shadow"]["determining_policies"]
    activate(client, z, pset["id"], allow_v["id"])
    body = decide(client, z, {}).json()
    event = db.execute(
        "SELECT shadow_decision FROM audit_events WHERE request_id = %s", (body["request_id"],)
    ).fetchone()
    assert event["shadow_decision"] is None


def test_activation_is_in_force_for_the_next_decision_here(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    pset, allow_v, deny_v = allow_and_deny_versions(client, z)
    for version, expected in [(allow_v, "allow"), (deny_v, "deny"), (allow_v, "allow")]:
        activate(client, z, pset["id"], version["id"])
        body = decide(client, z, {}).json()
        assert (body["decision"], body["policy_set_version_id"]) == (expected, version["id"])


def test_archived_policy_and_set_keep_evaluating_until_the_next_activation(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    made = active_set(client, z, DENY)
    assert client.delete(f"/v1/zones/{z}/policies/{made['policies'][0]['id']}").status_code == 204
    assert client.delete(f"/v1/zones/{z}/policy-sets/{made['set']['id']}").status_code == 204
    assert decide(client, z, {}).json()["decision"] == "deny"


def test_archived_zone_answers_404(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    assert decide(client, z, {}).status_code == 200
    assert client.delete(f"/v1/zones/{z}").status_code == 204
    assert decide(client, z, {}).json() == {"error": "zone_not_found"}


@pytest.mark.parametrize(
    "body",
    [{}, {"input": []}, {"input": "x"}, {"input": {}, "sign": "yes"}, {"input": {}, "extra": 1}],
)
def test_bad_bodies(client: TestClient, zone: dict[str, Any], body: dict[str, Any]) -> None:
    active_set(client, zone["id"], ALLOW)
    response = client.post(f"/v1/zones/{zone['id']}/decisions", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"


def test_zone_tokens(
    client: TestClient, zone: dict[str, Any], make_zone: Any, zone_token: Any
) -> None:
    other = make_zone()
    active_set(client, zone["id"], ALLOW)
    token = zone_token(zone["id"])
    response = client.post(
        f"/v1/zones/{zone['id']}/decisions", json={"input": {}}, headers=bearer(token)
    )
    assert response.status_code == 200
    response = client.post(
        f"/v1/zones/{other['id']}/decisions", json={"input": {}}, headers=bearer(token)
    )
    assert response.status_code == 403


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_signed_decision_verifies_with_the_zone_jwks(
    client: TestClient, zone: dict[str, Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    unsigned = decide(client, z, {})
    assert "jws" not in unsigned.json()
    body = decide(client, z, {"requested_scopes": ["x"]}, sign=True).json()
    header_b64, payload_b64, signature_b64 = body["jws"].split(".")
    header = json.loads(_b64(header_b64))
    assert header["alg"] == "EdDSA"
    assert header["zone_id"] == z and abs(header["iat"] - time.time()) < 60
    keys = client.get(f"/v1/zones/{z}/jwks.json").json()["keys"]
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    public = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    public.verify(_b64(signature_b64), f"{header_b64}.{payload_b64}".encode())
    payload = json.loads(_b64(payload_b64))
    assert payload == {k: v for k, v in body.items() if k != "jws"}


# -- two processes ------------------------------------------------------------------------------


@pytest.fixture
def second_client(database_url: str, tmp_path: Path, request: Any) -> Iterator[TestClient]:
    """Another app instance (another 'process') on the same database."""
    overrides = getattr(request, "param", {})
    app = create_app(make_settings(database_url, tmp_path / "b", **overrides), kek=TEST_KEK)
    with TestClient(app, raise_server_exceptions=False) as other:
        other.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield other


def _switch_and_wait(client: TestClient, other: TestClient, zone_id: str) -> float:
    """Activate deny through ``client`` after ``other`` has cached allow; seconds until
    ``other`` answers deny."""
    pset, allow_v, deny_v = allow_and_deny_versions(client, zone_id)
    activate(client, zone_id, pset["id"], allow_v["id"])
    assert decide(other, zone_id, {}).json()["decision"] == "allow"
    activate(client, zone_id, pset["id"], deny_v["id"])
    started = time.monotonic()
    while time.monotonic() - started < 3:
        body = decide(other, zone_id, {}).json()
        if body["decision"] == "deny":
            assert body["policy_set_version_id"] == deny_v["id"]
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError("the other process never saw the activation")


def test_activation_reaches_another_process_within_a_second(
    client: TestClient, second_client: TestClient, zone: dict[str, Any]
) -> None:
    assert _switch_and_wait(client, second_client, zone["id"]) < 1.0


@pytest.mark.parametrize("second_client", [{"pdp_reconcile_seconds": 0}], indirect=True)
def test_the_outbox_notify_alone_reaches_another_process(
    client: TestClient, second_client: TestClient, zone: dict[str, Any]
) -> None:
    assert _switch_and_wait(client, second_client, zone["id"]) < 1.0


@pytest.mark.parametrize("second_client", [{"relay_enabled": False}], indirect=True)
def test_reconciliation_alone_heals_a_missed_message(
    database_url: str, tmp_path: Path, second_client: TestClient, db: psycopg.Connection[Any]
) -> None:
    quiet = create_app(
        make_settings(database_url, tmp_path / "a", relay_enabled=False), kek=TEST_KEK
    )
    with TestClient(quiet, raise_server_exceptions=False) as first:
        first.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        zone_id = first.post("/v1/zones", json={"name": "quiet"}).json()["id"]
        assert _switch_and_wait(first, second_client, zone_id) < 1.0
    unpublished = db.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    assert unpublished.fetchone()["n"] == 2  # no relay ran: only reconciliation could help


def test_a_large_input_is_audited_by_size_and_hash(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    active_set(client, zone["id"], ALLOW)
    big = {"blob": "x" * 70_000}
    body = decide(client, zone["id"], big).json()
    assert body["decision"] == "allow"
    metadata = db.execute(
        "SELECT metadata_json FROM audit_events WHERE request_id = %s", (body["request_id"],)
    ).fetchone()["metadata_json"]
    encoded = json.dumps(big, separators=(",", ":")).encode()
    assert "input" not in metadata
    assert metadata["input_bytes"] == len(encoded)
    assert metadata["input_sha256"] == hashlib.sha256(encoded).hexdigest()


def test_policy_outputs_copied_from_a_large_input_do_not_bloat_the_audit_row(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    active_set(client, zone["id"], ALLOW)  # allow grants every requested scope
    scopes = [f"scope:{i:06d}:" + "x" * 200 for i in range(128)]  # 128: the input limit
    body = decide(client, zone["id"], {"requested_scopes": scopes}).json()
    assert body["decision"] == "allow" and body["granted_scopes"] == scopes  # answered in full
    row = db.execute(
        "SELECT metadata_json, pg_column_size(metadata_json) AS size FROM audit_events"
        " WHERE request_id = %s",
        (body["request_id"],),
    ).fetchone()
    granted = row["metadata_json"]["granted_scopes"]
    encoded = json.dumps(scopes, separators=(",", ":")).encode()
    assert granted == {
        "omitted_bytes": len(encoded),
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }
    assert row["size"] < 20_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "a JSON body is required"),
        (b"  ", "malformed JSON: Input data was truncated"),
        (b'{"input": {}', "malformed JSON: Input data was truncated"),
        (b'{"input": {}, "sign": "true"}', "Expected `bool`, got `str`"),
        (b'{"input": {}, "sign": 1}', "Expected `bool`, got `int`"),
        (b'{"input": {}, "sign": null}', "Expected `bool`, got `null`"),
    ],
)
def test_the_raw_body_is_decoded_strictly(
    client: TestClient, zone: dict[str, Any], content: bytes, message: str
) -> None:
    """The handler decodes the raw body itself, once: never lax (``"true"`` is no boolean)."""
    active_set(client, zone["id"], ALLOW)
    response = client.post(
        f"/v1/zones/{zone['id']}/decisions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["message"] == message


def test_a_bad_body_is_reported_before_an_unknown_zone(client: TestClient) -> None:
    response = client.post("/v1/zones/nope/decisions", json={"input": {}, "sign": "true"})
    assert response.status_code == 400
    assert response.json()["issues"] == [
        {"path": ["sign"], "message": "Expected `bool`, got `str`"}
    ]


def test_openapi_documents_the_decision_body_and_response(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    operation = paths["/v1/zones/{zone_id}/decisions"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DecisionRequest"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/DecisionResponse"}
