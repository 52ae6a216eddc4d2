"""Decision logs from OPA into the zone's audit log, and status reports into pdp-instances."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import TestClient

from tests.api.policy_helpers import ALLOW, DENY, active_set
from tests.conftest import bearer
from tests.fleet.opa_protocol import (
    decision_event,
    log_chunk,
    log_headers,
    status_report,
)
from tests.fleet.test_fleet_bundle import pdp_token

RESULT = {
    "decision": "partial",
    "reasons": ["roles_allow_some_requested_scopes"],
    "granted_scopes": ["orders:read"],
    "obligations": {"log": True},
    "step_up": None,
}


def post_logs(client: TestClient, zone_id: str, token: str, body: bytes) -> Any:
    return client.post(f"/v1/zones/{zone_id}/opa/logs", content=body, headers=log_headers(token))


def opa_events(client: TestClient, zone_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/zones/{zone_id}/audit", params={"event_type": "decision.opa"})
    assert response.status_code == 200
    return response.json()["rows"]


def test_events_land_in_the_audit_log_redacted(client: TestClient, zone: dict) -> None:
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    secret_input = {
        "subject": {"id": "u1", "password": "hunter2-secret"},
        "requested_scopes": ["orders:read"],
        "client": {"api_key": "abc.def"},
    }
    moment = datetime(2026, 3, 16, 10, 0, 0, 123456, tzinfo=UTC)
    events = [
        decision_event(secret_input, RESULT, revision=version, moment=moment),
        decision_event({"a": 1}, True, revision="not-ours", instance_id="opa-2"),
    ]
    response = post_logs(client, zone_id, token, log_chunk(events))
    assert response.status_code == 204, response.text
    assert response.headers["x-caracal-skipped"] == "0"

    rows = {r["request_id"]: r for r in opa_events(client, zone_id)}
    first = rows[events[0]["decision_id"]]
    assert first["event_type"] == "decision.opa" and first["decision"] == "partial"
    metadata = first["metadata_json"]
    assert metadata["pdp_instance_id"] == "8f1d6c1e-opa-1"
    assert metadata["policy_set_version_id"] == version
    assert metadata["granted_scopes"] == ["orders:read"]
    assert metadata["input"]["subject"]["password"] == "[REDACTED]"
    assert "hunter2-secret" not in json.dumps(rows) and "abc.def" not in json.dumps(rows)
    assert datetime.fromisoformat(first["occurred_at"]) == moment
    second = rows[events[1]["decision_id"]]
    assert second["decision"] is None  # a boolean result is not the result shape
    assert second["metadata_json"]["policy_set_version_id"] is None

    detail = client.get(f"/v1/zones/{zone_id}/audit/by-request/{events[0]['decision_id']}")
    assert detail.status_code == 200
    [event] = detail.json()
    assert event["policy_set_version_id"] == version
    assert event["metadata_json"]["input"]["subject"]["password"] == "[REDACTED]"


def test_a_retried_chunk_is_stored_once(client: TestClient, zone: dict, db: Any) -> None:
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    events = [decision_event({"i": i}, RESULT, revision=version, req_id=i) for i in range(50)]
    body = log_chunk(events)
    assert post_logs(client, zone_id, token, body).status_code == 204
    assert post_logs(client, zone_id, token, body).status_code == 204
    # a chunk overlapping the first, and the same id twice in one chunk
    extra = decision_event({"i": 99}, RESULT, revision=version)
    assert (
        post_logs(client, zone_id, token, log_chunk([*events[:5], extra, extra])).status_code == 204
    )
    count = db.execute(
        "SELECT count(*) AS n FROM audit_events WHERE zone_id = %s AND event_type = 'decision.opa'",
        (zone_id,),
    ).fetchone()["n"]
    assert count == 51


def test_concurrent_retries_store_once(settings: Any) -> None:
    """Several uploads of one chunk at the same time (OPA retrying while the first is slow)
    store each event once."""
    from litestar.testing import TestClient as Client

    from controlplane.app import create_app
    from tests.conftest import ADMIN_TOKEN, TEST_KEK

    with Client(create_app(settings, kek=TEST_KEK)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        zone_id = client.post("/v1/zones", json={"name": "Concurrent"}).json()["id"]
        version = active_set(client, zone_id, ALLOW)["version"]["id"]
        token = pdp_token(client, zone_id)
        body = log_chunk([decision_event({"i": i}, RESULT, revision=version) for i in range(200)])
        statuses: list[int] = []

        def upload() -> None:
            statuses.append(post_logs(client, zone_id, token, body).status_code)

        threads = [threading.Thread(target=upload) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [204] * 6
        rows = client.get(
            f"/v1/zones/{zone_id}/audit", params={"event_type": "decision.opa", "limit": 500}
        ).json()["rows"]
        assert len(rows) == 200 and len({r["request_id"] for r in rows}) == 200


def test_bad_chunks_are_400_and_store_nothing(client: TestClient, zone: dict) -> None:
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    good = decision_event({"x": 1}, RESULT, revision=version)
    whole = log_chunk([good])
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    inflates_too_far = bomb.compress(b"[" + b" " * (65 * 1024 * 1024)) + bomb.flush()
    for body in [
        b"not gzip at all",
        whole[:-6],  # truncated
        gzip.compress(b'[{"decision_id": "x", '),  # bad JSON
        gzip.compress(b'{"decision_id": "x"}'),  # not an array
        inflates_too_far,  # a small body that inflates past 64 MiB
        gzip.compress(b"[" + b",".join([b"{}"] * 100_001) + b"]"),  # too many events
        b"\x1f\x8b" + b"\0" * (8 * 1024 * 1024),  # over 8 MiB
    ]:
        headers = log_headers(token)
        if not body.startswith(b"\x1f\x8b"):
            headers["Content-Encoding"] = "gzip"
        response = client.post(f"/v1/zones/{zone_id}/opa/logs", content=body, headers=headers)
        assert response.status_code == 400, (body[:20], response.text)
        assert response.json()["error"] == "invalid_body"
    assert opa_events(client, zone_id) == []
    assert len(inflates_too_far) < 1024 * 1024


def test_events_without_id_or_timestamp_are_skipped(client: TestClient, zone: dict) -> None:
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    good = decision_event({"x": 1}, RESULT, revision=version)
    no_id = {
        k: v for k, v in decision_event({}, RESULT, revision=version).items() if k != "decision_id"
    }
    no_time = {
        k: v for k, v in decision_event({}, RESULT, revision=version).items() if k != "timestamp"
    }
    bad_time = {**decision_event({}, RESULT, revision=version), "timestamp": "yesterday"}
    response = post_logs(client, zone_id, token, log_chunk([good, no_id, no_time, bad_time, 7]))
    assert response.status_code == 204
    assert response.headers["x-caracal-skipped"] == "4"
    assert [r["request_id"] for r in opa_events(client, zone_id)] == [good["decision_id"]]


def test_status_reports_and_pdp_instances(client: TestClient, zone: dict, db: Any) -> None:
    zone_id = zone["id"]
    old = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    auth = bearer(token)
    url = f"/v1/zones/{zone_id}/opa/status"
    assert client.post(url, json=status_report("opa-a", old), headers=auth).status_code == 204
    new = active_set(client, zone_id, DENY)["version"]["id"]
    assert client.post(url, json=status_report("opa-b", new), headers=auth).status_code == 204
    failing = status_report("opa-c", old, code="bundle_error", message="signature mismatch")
    assert client.post(url, json=failing, headers=auth).status_code == 204
    db.execute(
        "UPDATE pdp_instances SET last_seen_at = now() - interval '5 minutes'"
        " WHERE zone_id = %s AND instance_id = 'opa-a'",
        (zone_id,),
    )
    gone = status_report("opa-old", old)
    assert client.post(url, json=gone, headers=auth).status_code == 204
    db.execute(
        "UPDATE pdp_instances SET last_seen_at = now() - interval '11 minutes'"
        " WHERE zone_id = %s AND instance_id = 'opa-old'",
        (zone_id,),
    )

    instances = client.get(f"/v1/zones/{zone_id}/pdp-instances").json()
    assert [i["instance_id"] for i in instances] == ["opa-c", "opa-b", "opa-a"]
    by_id = {i["instance_id"]: i for i in instances}
    assert by_id["opa-b"]["in_sync"] is True and by_id["opa-b"]["active_revision"] == new
    assert by_id["opa-a"]["in_sync"] is False and by_id["opa-a"]["opa_version"] == "1.4.2"
    assert by_id["opa-c"]["bundle_error"]["code"] == "bundle_error"
    assert by_id["opa-b"]["last_successful_activation"] is not None
    # a later report replaces the instance's row
    assert client.post(url, json=status_report("opa-a", new), headers=auth).status_code == 204
    again = {i["instance_id"]: i for i in client.get(f"/v1/zones/{zone_id}/pdp-instances").json()}
    assert again["opa-a"]["in_sync"] is True and len(again) == 3
    # bad reports
    for body in [b"[]", b"{", json.dumps({"labels": {}}).encode()]:
        response = client.post(
            url, content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_body"
    gz = client.post(
        url,
        content=gzip.compress(json.dumps(status_report("opa-gz", new)).encode()),
        headers={**auth, "Content-Encoding": "gzip"},
    )
    assert gz.status_code == 204


def test_decision_event_time_is_kept(client: TestClient, zone: dict) -> None:
    """``occurred_at`` is OPA's timestamp, so a log shipped late sorts where it happened."""
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    late = decision_event(
        {}, RESULT, revision=version, moment=datetime.now(UTC) - timedelta(days=3)
    )
    now = decision_event({}, RESULT, revision=version)
    assert post_logs(client, zone_id, token, log_chunk([late, now])).status_code == 204
    assert [r["request_id"] for r in opa_events(client, zone_id)] == [
        now["decision_id"],
        late["decision_id"],
    ]


def nested(levels: int, leaf: Any = 1) -> Any:
    """An object nesting ``levels`` levels: ``{"a": {"a": … leaf}}``."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def summary_of(value: Any) -> dict[str, Any]:
    """``{"omitted_bytes", "sha256"}`` of ``value``'s compact JSON, as the audit records it."""
    encoded = json.dumps(value, separators=(",", ":")).encode()
    return {"omitted_bytes": len(encoded), "sha256": hashlib.sha256(encoded).hexdigest()}


def opa_event_count(db: Any, zone_id: str) -> int:
    return db.execute(
        "SELECT count(*) AS n FROM audit_events WHERE zone_id = %s AND event_type = 'decision.opa'",
        (zone_id,),
    ).fetchone()["n"]


def test_a_deep_event_is_stored_summarised_with_its_chunk(
    client: TestClient, zone: dict, db: Any
) -> None:
    """One event nested deeper than 64 levels does not refuse its chunk (OPA would retry it
    forever): it is stored with its input summarised, the others as usual."""
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    deep_input = {"subject": {"password": "hunter2-secret"}, "resource": nested(100)}
    moment = datetime(2026, 3, 16, 11, 0, 0, 654321, tzinfo=UTC)
    events = [
        decision_event({"i": 1}, RESULT, revision=version),
        decision_event(deep_input, RESULT, revision=version, req_id=2, moment=moment),
        decision_event({"i": 3}, RESULT, revision=version, req_id=3),
    ]
    body = log_chunk(events)
    response = post_logs(client, zone_id, token, body)
    assert response.status_code == 204, response.text
    assert response.headers["x-caracal-skipped"] == "0"

    rows = {r["request_id"]: r for r in opa_events(client, zone_id)}
    assert set(rows) == {e["decision_id"] for e in events}
    deep = rows[events[1]["decision_id"]]
    metadata = deep["metadata_json"]
    assert "input" not in metadata
    summary = summary_of(deep_input)
    assert metadata["input_bytes"] == summary["omitted_bytes"]
    assert metadata["input_sha256"] == summary["sha256"]
    assert metadata["input_omitted_reason"] == "nested deeper than 64 levels"
    assert deep["decision"] == "partial" and metadata["granted_scopes"] == ["orders:read"]
    assert metadata["policy_set_version_id"] == version and metadata["req_id"] == 2
    assert datetime.fromisoformat(deep["occurred_at"]) == moment
    assert "hunter2-secret" not in json.dumps(rows)
    for normal in (events[0], events[2]):
        row = rows[normal["decision_id"]]
        assert row["metadata_json"]["input"] == normal["input"]
        assert "input_omitted_reason" not in row["metadata_json"]
        assert row["decision"] == "partial" and row["metadata_json"]["obligations"] == {"log": True}

    # OPA's retry of the same chunk stores nothing twice
    assert post_logs(client, zone_id, token, body).status_code == 204
    assert opa_event_count(db, zone_id) == 3
    assert (
        db.execute(
            "SELECT count(*) AS n FROM opa_decision_ids WHERE zone_id = %s", (zone_id,)
        ).fetchone()["n"]
        == 3
    )


def test_deep_results_and_outputs_are_summarised_field_by_field(
    client: TestClient, zone: dict
) -> None:
    """A result of the result shape keeps its decision (a too-deep obligation is summarised
    alone); any other too-deep result, label or field is summarised whole; a part nesting
    63 levels (so the event 64) is kept as it is."""
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    deep_obligations = {**RESULT, "decision": "deny", "obligations": nested(80)}
    deep_list: Any = 1
    for _ in range(70):
        deep_list = [deep_list]
    at_the_limit = decision_event(nested(63), True, revision=version)  # the event: 64 levels
    over_the_limit = decision_event(nested(64), True, revision=version)
    deep_label = decision_event({}, True, revision=version)
    deep_label["labels"]["id"] = nested(70)
    deep_label["masked"] = [nested(70)]
    events = [
        decision_event({"x": 1}, deep_obligations, revision=version),
        decision_event({"x": 2}, deep_list, revision=version),
        decision_event({"x": 3}, {"decision": {"not": "a string"}}, revision=version),
        at_the_limit,
        over_the_limit,
        deep_label,
    ]
    response = post_logs(client, zone_id, token, log_chunk(events))
    assert response.status_code == 204, response.text
    rows = {
        r["request_id"]: r["metadata_json"] | {"_decision": r["decision"]}
        for r in opa_events(client, zone_id)
    }
    reason = {"omitted_reason": "nested deeper than 64 levels"}

    shaped = rows[events[0]["decision_id"]]
    assert shaped["_decision"] == "deny"
    assert shaped["obligations"] == summary_of(nested(80)) | reason
    assert shaped["reasons"] == RESULT["reasons"] and shaped["input"] == {"x": 1}
    listed = rows[events[1]["decision_id"]]
    assert listed["_decision"] is None and listed["result"] == summary_of(deep_list) | reason
    odd = rows[events[2]["decision_id"]]  # a decision that is not a string: no decision
    assert odd["_decision"] is None and odd["result"] == {"decision": {"not": "a string"}}
    assert rows[at_the_limit["decision_id"]]["input"] == nested(63)
    over = rows[over_the_limit["decision_id"]]
    assert "input" not in over and over["input_bytes"] == summary_of(nested(64))["omitted_bytes"]
    labelled = rows[deep_label["decision_id"]]
    assert labelled["pdp_instance_id"] == summary_of(nested(70)) | reason
    assert labelled["masked"] == summary_of([nested(70)]) | reason
    assert labelled["opa_version"] == "1.4.2" and labelled["input"] == {}


def with_deep_input(event: dict[str, Any], levels: int) -> bytes:
    """A chunk of ``event`` whose input nests ``levels`` levels (written as text: Python's
    own JSON encoder stops before 1,000)."""
    deep = b'{"a":' * levels + b"1" + b"}" * levels
    text = json.dumps([{**event, "input": "DEEP"}], separators=(",", ":")).encode()
    return gzip.compress(text.replace(b'"DEEP"', deep))


def cut_summary() -> dict[str, Any]:
    """The input summary of an event whose input nests deeper than the chunk's cut (level
    256; the input starts at level 3, so 254 of its levels are kept)."""
    kept = 256 - 2
    cut = b'{"a":' * kept + b'"nested deeper than 256 levels: cut"' + b"}" * kept
    return {"omitted_bytes": len(cut), "sha256": hashlib.sha256(cut).hexdigest()}


def test_a_chunk_deeper_than_the_decoder_goes_is_stored_cut(
    client: TestClient, zone: dict, db: Any
) -> None:
    """OPA accepts inputs nested up to 10,000 levels, past the JSON decoder's ~1,000: such a
    chunk is cut at 256 levels, then stored as any deep chunk (its events' too-deep fields
    summarised, the size and hash being those of the cut JSON), its other events in full.
    Never a 400 that OPA would retry forever, never a 500."""
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    for levels in (5000, 10_000):
        deep = decision_event({}, RESULT, revision=version)
        shallow = decision_event({"i": levels}, RESULT, revision=version)
        text = json.dumps([{**deep, "input": "DEEP"}, shallow], separators=(",", ":")).encode()
        nested_text = b'{"a":' * levels + b"1" + b"}" * levels
        body = gzip.compress(text.replace(b'"DEEP"', nested_text))
        response = post_logs(client, zone_id, token, body)
        assert response.status_code == 204, (levels, response.text)
        rows = {r["request_id"]: r for r in opa_events(client, zone_id)}
        stored = rows[deep["decision_id"]]
        metadata = stored["metadata_json"]
        assert "input" not in metadata and stored["decision"] == "partial"
        summary = cut_summary()
        assert metadata["input_bytes"] == summary["omitted_bytes"]
        assert metadata["input_sha256"] == summary["sha256"]
        assert metadata["input_omitted_reason"] == "nested deeper than 64 levels"
        assert rows[shallow["decision_id"]]["metadata_json"]["input"] == {"i": levels}
        # OPA's retry stores nothing twice
        assert post_logs(client, zone_id, token, body).status_code == 204
    assert opa_event_count(db, zone_id) == 4

    # across the decoder's edge every chunk is stored
    for levels in range(950, 1051, 10):
        event = decision_event({}, RESULT, revision=version)
        response = post_logs(client, zone_id, token, with_deep_input(event, levels))
        assert response.status_code == 204, (levels, response.text)
    assert opa_event_count(db, zone_id) == 4 + 11


def test_a_chunk_over_4_mib_is_not_cut(client: TestClient, zone: dict, db: Any) -> None:
    """Cutting walks the chunk in Python, so a chunk over 4 MiB (inflated) is never cut: one
    the decoder reads is stored as any deep chunk (its deep input summarised whole); one it
    cannot read stays 400 invalid_body, nothing stored."""
    zone_id = zone["id"]
    version = active_set(client, zone_id, ALLOW)["version"]["id"]
    token = pdp_token(client, zone_id)
    padded = [
        decision_event({"pad": "x" * 1000, "i": i}, RESULT, revision=version) for i in range(4200)
    ]

    def large_chunk(deep: dict[str, Any], levels: int) -> bytes:
        text = json.dumps([{**deep, "input": "DEEP"}, *padded], separators=(",", ":")).encode()
        text = text.replace(b'"DEEP"', b"[" * levels + b"]" * levels)
        assert len(text) > 4 * 1024 * 1024
        return gzip.compress(text)

    too_deep = decision_event({}, RESULT, revision=version)
    response = post_logs(client, zone_id, token, large_chunk(too_deep, 3000))
    assert response.status_code == 400, response.text
    assert response.json()["issues"][0]["message"] == (
        "JSON nested deeper than the decoder's limit (about 1000 levels)"
    )
    assert opa_event_count(db, zone_id) == 0

    deep = decision_event({}, RESULT, revision=version)
    response = post_logs(client, zone_id, token, large_chunk(deep, 300))
    assert response.status_code == 204, response.text
    assert opa_event_count(db, zone_id) == 1 + len(padded)
    [row] = client.get(f"/v1/zones/{zone_id}/audit/by-request/{deep['decision_id']}").json()
    encoded = b"[" * 300 + b"]" * 300
    assert row["metadata_json"]["input_bytes"] == len(b'{"value":' + encoded + b"}")
    assert (
        row["metadata_json"]["input_sha256"]
        == hashlib.sha256(b'{"value":' + encoded + b"}").hexdigest()
    )
