"""Batch decisions: ``POST /v1/zones/{zoneId}/decisions/batch`` answers each input exactly as
``POST …/decisions`` would, audits each one before the answer, and leaves nothing behind
when it refuses the batch."""

from __future__ import annotations

import base64
import json
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient

from controlplane.decisions.input_limits import MAX_LIST_ITEMS, MAX_REQUESTED_SCOPES, MAX_VALUES
from tests.api.policy_helpers import ALLOW, active_set
from tests.api.test_decision_sessions import STEP_UP, session
from tests.conftest import bearer

ROLES = """package caracal.authz

import rego.v1

default result := {"allow": false, "reasons": ["not_admin"]}

result := {"allow": true, "reasons": ["admin"], "granted_scopes": input.requested_scopes} if {
    input.role == "admin"
}
"""


def batch(client: TestClient, zone_id: str, body: Any, **kwargs: Any) -> Any:
    return client.post(f"/v1/zones/{zone_id}/decisions/batch", json=body, **kwargs)


def decision_rows(db: psycopg.Connection[Any], zone_id: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM audit_events WHERE zone_id = %s AND event_type = 'decision'"
        " ORDER BY occurred_at, id",
        (zone_id,),
    ).fetchall()


def refuse_decision_rows(db: psycopg.Connection[Any]) -> None:
    """Make the database itself refuse every decision audit row (``DROP TRIGGER refuse ON
    audit_events`` lifts it)."""
    db.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW"
        " WHEN (NEW.event_type = 'decision') EXECUTE FUNCTION refuse()"
    )


def test_each_item_is_answered_as_a_single_decision_in_order_and_audited(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    made = active_set(client, z, ROLES)
    inputs = [
        {"role": "admin", "requested_scopes": ["read"]},
        {"role": "guest", "requested_scopes": ["read"], "api_key": "s3cret"},
        {"role": "admin", "requested_scopes": ["write", "read"]},
    ]
    response = batch(client, z, {"inputs": inputs}, headers={"X-Request-Id": "the-batch"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "the-batch"
    decisions = response.json()["decisions"]
    assert [d["decision"] for d in decisions] == ["allow", "deny", "allow"]
    assert [d["granted_scopes"] for d in decisions] == [["read"], [], ["write", "read"]]
    ids = [d["request_id"] for d in decisions]
    assert len(set(ids)) == 3 and "the-batch" not in ids
    # Each item is what the single route answers for the same input (but its request id).
    for item, got in zip(inputs, decisions, strict=True):
        single = client.post(f"/v1/zones/{z}/decisions", json={"input": item}).json()
        assert {**got, "request_id": None} == {**single, "request_id": None}
    # One committed audit event per item, found by its own request id, tied to the batch.
    for item, got in zip(inputs, decisions, strict=True):
        (event,) = client.get(f"/v1/zones/{z}/audit/by-request/{got['request_id']}").json()
        assert event["decision"] == got["decision"]
        assert event["policy_set_version_id"] == made["version"]["id"]
        assert event["metadata_json"]["batch_request_id"] == "the-batch"
        redacted = {**item, "api_key": "[REDACTED]"} if "api_key" in item else item
        assert event["metadata_json"]["input"] == redacted
    assert client.get(f"/v1/zones/{z}/audit/by-request/the-batch").status_code == 404


def test_one_hundred_inputs_and_one_are_accepted(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    response = batch(client, z, {"inputs": [{"n": i} for i in range(100)]})
    assert response.status_code == 200, response.text
    assert len(response.json()["decisions"]) == 100
    assert batch(client, z, {"inputs": [{}]}).status_code == 200
    assert len(decision_rows(db, z)) == 101
    # The input order is the answer order, and the rows carry the inputs.
    rows = decision_rows(db, z)[:100]
    by_request = {r["request_id"]: r["metadata_json"]["input"]["n"] for r in rows}
    ns = [by_request[d["request_id"]] for d in response.json()["decisions"]]
    assert ns == list(range(100))


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, []),
        ({"inputs": []}, ["inputs"]),
        ({"inputs": [{}] * 101}, ["inputs"]),
        ({"inputs": [{}, 3]}, ["inputs", 1]),
        ({"inputs": {"a": {}}}, ["inputs"]),
        ({"inputs": [{}], "sign": "true"}, ["sign"]),
        ({"inputs": [{}], "extra": 1}, ["extra"]),
        ({"input": {}}, ["input"]),
    ],
)
def test_bad_bodies_are_400_and_record_nothing(
    client: TestClient,
    zone: dict[str, Any],
    db: psycopg.Connection[Any],
    body: dict[str, Any],
    path: list[Any],
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    response = batch(client, z, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert response.json()["issues"][0]["path"] == path
    assert decision_rows(db, z) == []


def test_malformed_json_and_missing_body(client: TestClient, zone: dict[str, Any]) -> None:
    url = f"/v1/zones/{zone['id']}/decisions/batch"
    for content in (b"", b"{not json"):
        response = client.post(url, content=content)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_body"


def test_no_active_set_is_409_and_unknown_zone_404(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    response = batch(client, zone["id"], {"inputs": [{}]})
    assert response.status_code == 409
    assert response.json()["error"] == "no_active_policy_set"
    response = batch(client, "no-such-zone", {"inputs": [{}]})
    assert response.status_code == 404
    assert response.json() == {"error": "zone_not_found"}


def test_a_session_input_error_in_any_item_refuses_the_batch_and_records_nothing(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, STEP_UP)
    good = {"session": session("first-session")}
    # malformed (caught before any database work) and unrecordable (caught by the check)
    for bad, issue_path in (
        ({"session": {"id": "x", "expires_at": "soon"}}, ["inputs", 1, "session", "expires_at"]),
        ({"session": {"id": "never-seen"}}, ["inputs", 1, "session"]),
    ):
        response = batch(client, z, {"inputs": [good, bad]})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_body"
        assert response.json()["issues"][0]["path"] == issue_path
    assert decision_rows(db, z) == []
    assert db.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM step_up_challenges").fetchone()["n"] == 0


def test_sessions_and_step_up_per_item(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, STEP_UP)
    inputs = [{"session": session("s1")}, {"session": session("s2")}, {"session": {"id": "s1"}}]
    response = batch(client, z, {"inputs": inputs})
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert [d["decision"] for d in decisions] == ["partial"] * 3
    # s1's pending challenge is reused by the third item; s2 has its own
    assert decisions[0]["step_up"] == decisions[2]["step_up"]
    assert decisions[1]["step_up"]["id"] != decisions[0]["step_up"]["id"]
    assert db.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 2
    challenge = decisions[0]["step_up"]["id"]
    assert client.post(f"/v1/zones/{z}/step-up-challenges/{challenge}/satisfy").status_code == 200
    db.execute("UPDATE sessions SET revoked_at = now() WHERE zone_id = %s AND id = 's2'", (z,))
    response = batch(client, z, {"inputs": [{"session": {"id": "s1"}}, {"session": {"id": "s2"}}]})
    first, second = response.json()["decisions"]
    assert first["decision"] == "allow" and first["reasons"] == ["stepped_up"]
    assert second["decision"] == "deny" and second["reasons"] == ["session_revoked"]
    events = decision_rows(db, z)
    assert events[-1]["metadata_json"]["step_up"] is None
    assert len(events) == 5


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_signed_items_each_carry_a_verifiable_jws(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    unsigned = batch(client, z, {"inputs": [{}]}).json()["decisions"][0]
    assert "jws" not in unsigned
    decisions = batch(client, z, {"inputs": [{"a": 1}, {"a": 2}], "sign": True}).json()["decisions"]
    keys = client.get(f"/v1/zones/{z}/jwks.json").json()["keys"]
    for decision in decisions:
        header_b64, payload_b64, signature_b64 = decision["jws"].split(".")
        header = json.loads(_b64(header_b64))
        jwk = next(k for k in keys if k["kid"] == header["kid"])
        public = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
        public.verify(_b64(signature_b64), f"{header_b64}.{payload_b64}".encode())
        payload = json.loads(_b64(payload_b64))
        assert payload == {k: v for k, v in decision.items() if k != "jws"}
        assert header["zone_id"] == z


def test_zone_scope_auth(
    client: TestClient, zone: dict[str, Any], make_zone: Any, zone_token: Any
) -> None:
    other = make_zone()
    active_set(client, zone["id"], ALLOW)
    token = zone_token(zone["id"])
    body = {"inputs": [{}]}
    assert batch(client, zone["id"], body, headers=bearer(token)).status_code == 200
    response = batch(client, other["id"], body, headers=bearer(token))
    assert response.status_code == 403
    assert response.json() == {"error": "admin_token_zone_mismatch"}
    response = batch(client, zone["id"], body, headers={"Authorization": "Bearer wrong-token-x"})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_admin_token"}


def test_the_audit_write_failing_answers_503_and_no_decision(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    refuse_decision_rows(db)
    response = batch(client, z, {"inputs": [{}, {}]})
    assert response.status_code == 503
    assert response.json()["error"] == "audit_unavailable"
    db.execute("DROP TRIGGER refuse ON audit_events")
    assert decision_rows(db, z) == []


def test_openapi_documents_the_batch_route(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    operation = paths["/v1/zones/{zone_id}/decisions/batch"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchDecisionRequest"}
    responses = operation["responses"]
    ok = responses["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/BatchDecisionResponse"}
    for status in ("400", "401", "403", "404", "409", "413", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status


def test_an_item_over_an_input_limit_refuses_the_batch(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    active_set(client, z, ALLOW)
    too_many = {"requested_scopes": [f"s{i}" for i in range(MAX_REQUESTED_SCOPES + 1)]}
    response = batch(client, z, {"inputs": [{}, too_many]})
    assert response.status_code == 400, response.text
    assert response.json()["issues"][0]["path"] == ["inputs", 1, "requested_scopes"]
    assert decision_rows(db, z) == []


def test_value_limits_are_per_item_in_a_large_batch(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    """The body of a full batch has more commas than one input may hold values: each item
    is still judged on its own (all small: decided), and an item over the list or value
    limit refuses the batch, named by its index."""
    z = zone["id"]
    active_set(client, z, ALLOW)
    small = {"subject": {"roles": [f"r{i}" for i in range(15)]}, "context": {"a": 1, "b": 2}}
    assert batch(client, z, {"inputs": [small] * 100}).status_code == 200

    long_list = {"subject": {"roles": [f"r{i}" for i in range(MAX_LIST_ITEMS + 1)]}}
    response = batch(client, z, {"inputs": [small] * 50 + [long_list] + [small] * 49})
    assert response.status_code == 400, response.text
    assert response.json()["issues"] == [
        {"path": ["inputs", 50, "subject", "roles"], "message": "at most 1000 items are allowed"}
    ]

    many = {"context": {f"k{i}": i for i in range(MAX_VALUES - 1)}}  # + input + context
    response = batch(client, z, {"inputs": [small, many]})
    assert response.status_code == 400, response.text
    assert response.json()["issues"] == [
        {"path": ["inputs", 1], "message": f"at most {MAX_VALUES} values are allowed"}
    ]
    assert len(decision_rows(db, z)) == 100  # only the first batch was decided
