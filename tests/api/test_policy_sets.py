"""Policy sets: create/list/get/archive, versions (manifest rules and hash) and activation."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from uuid6 import uuid7

from controlplane.policies.manifest import manifest_sha256
from tests.api.policy_helpers import (
    ALLOW,
    DENY,
    activate,
    create_policy,
    create_set,
    create_set_version,
    rego,
    sha,
)

SET_KEYS = {
    "id", "zone_id", "name", "description", "created_at", "active_version_id",
    "shadow_version_id",
}  # fmt: skip
SET_VERSION_KEYS = {
    "id", "policy_set_id", "version", "manifest_sha256", "schema_version", "created_at",
}  # fmt: skip


def versions_of(client: TestClient, zone_id: str, *contents: str) -> list[str]:
    """One new policy per content; their version ids."""
    return [create_policy(client, zone_id, c)["version"]["id"] for c in contents]


def insert_raw_policy(db: psycopg.Connection[Any], zone_id: str, content: str) -> str:
    """A policy version written straight to the database (bypassing the API's checks)."""
    policy_id, version_id = uuid7(), uuid7()
    db.execute(
        "INSERT INTO policies (zone_id, id, name) VALUES (%s, %s, 'raw')", (zone_id, policy_id)
    )
    db.execute(
        "INSERT INTO policy_versions (zone_id, id, policy_id, version, content, content_sha256,"
        " schema_version) VALUES (%s, %s, %s, 1, %s, %s, '2026-03-16')",
        (zone_id, version_id, policy_id, content, sha(content)),
    )
    return str(version_id)


def insert_raw_set_version(
    db: psycopg.Connection[Any], zone_id: str, set_id: str, version_ids: list[str]
) -> str:
    """A set version written straight to the database."""
    version_id = uuid7()
    db.execute(
        "INSERT INTO policy_set_versions (zone_id, id, policy_set_id, version, manifest_sha256,"
        " schema_version) VALUES (%s, %s, %s,"
        " (SELECT coalesce(max(version), 0) + 1 FROM policy_set_versions"
        "  WHERE policy_set_id = %s), %s, '2026-03-16')",
        (zone_id, version_id, set_id, set_id, "0" * 64),
    )
    for position, policy_version_id in enumerate(version_ids):
        db.execute(
            "INSERT INTO policy_set_version_entries VALUES (%s, %s, %s, %s)",
            (zone_id, version_id, position, policy_version_id),
        )
    return str(version_id)


# -- sets -------------------------------------------------------------------------------------


def test_create_list_get_archive(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    response = client.post(
        f"/v1/zones/{z}/policy-sets", json={"name": "main", "description": "prod"}
    )
    assert response.status_code == 201, response.text
    pset = response.json()
    assert set(pset) == SET_KEYS
    assert pset["zone_id"] == z
    assert (pset["name"], pset["description"]) == ("main", "prod")
    assert pset["active_version_id"] is None and pset["shadow_version_id"] is None
    second = create_set(client, z, "second")
    assert second["description"] is None
    assert client.get(f"/v1/zones/{z}/policy-sets").json() == [pset, second]
    detail = client.get(f"/v1/zones/{z}/policy-sets/{pset['id']}").json()
    assert detail == {**pset, "versions": []}
    assert client.delete(f"/v1/zones/{z}/policy-sets/{pset['id']}").status_code == 204
    assert client.get(f"/v1/zones/{z}/policy-sets").json() == [second]
    assert client.get(f"/v1/zones/{z}/policy-sets/{pset['id']}").status_code == 404
    types = [
        r["event_type"]
        for r in db.execute(
            "SELECT event_type FROM audit_events WHERE zone_id = %s"
            " AND event_type LIKE 'policy_set%%' ORDER BY occurred_at, id",
            (z,),
        ).fetchall()
    ]
    assert types == ["policy_set.created", "policy_set.created", "policy_set.archived"]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": 1}, {"name": "x", "other": True}, {"name": "x\u0000"}]
)
def test_create_bad_body(client: TestClient, zone: dict[str, Any], body: dict[str, Any]) -> None:
    response = client.post(f"/v1/zones/{zone['id']}/policy-sets", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"


def test_unknown_zone(client: TestClient) -> None:
    assert client.get("/v1/zones/nope/policy-sets").json() == {"error": "zone_not_found"}
    assert client.post("/v1/zones/nope/policy-sets", json={"name": "x"}).status_code == 404


def test_unknown_set_is_404_on_every_set_route(
    client: TestClient, zone: dict[str, Any], make_zone: Any
) -> None:
    z = zone["id"]
    foreign = create_set(client, make_zone()["id"])
    archived = create_set(client, z)
    client.delete(f"/v1/zones/{z}/policy-sets/{archived['id']}")
    version_id = versions_of(client, z, ALLOW)[0]
    for set_id in (str(uuid7()), "nope", foreign["id"], archived["id"]):
        base = f"/v1/zones/{z}/policy-sets/{set_id}"
        for response in (
            client.get(base),
            client.delete(base),
            client.post(f"{base}/versions", json={"manifest": [{"policy_version_id": version_id}]}),
            client.post(f"{base}/activate", json={"version_id": str(uuid7())}),
        ):
            assert response.status_code == 404, (set_id, response.text)
            assert response.json() == {"error": "policy_set_not_found"}


# -- versions ---------------------------------------------------------------------------------


def test_version_hash_numbering_and_detail(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    a, b = versions_of(client, z, ALLOW, DENY)
    pset = create_set(client, z)
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/versions",
        json={"manifest": [{"policy_version_id": a}, {"policy_version_id": b}]},
    )
    assert response.status_code == 201, response.text
    v1 = response.json()
    assert set(v1) == SET_VERSION_KEYS
    assert v1["policy_set_id"] == pset["id"]
    assert v1["version"] == 1
    assert v1["schema_version"] == "2026-03-16"
    lines = f"{a} {sha(ALLOW)}\n{b} {sha(DENY)}\n"
    assert v1["manifest_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert v1["manifest_sha256"] == manifest_sha256([(a, sha(ALLOW)), (b, sha(DENY))])
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/versions",
        json={
            "manifest": [{"policy_version_id": b}, {"policy_version_id": a}],
            "schema_version": "2026-09-09",
        },
    )
    v2 = response.json()
    assert v2["version"] == 2
    assert v2["schema_version"] == "2026-09-09"
    assert v2["manifest_sha256"] != v1["manifest_sha256"]  # order matters
    detail = client.get(f"/v1/zones/{z}/policy-sets/{pset['id']}").json()
    assert [{k: v[k] for k in SET_VERSION_KEYS} for v in detail["versions"]] == [v1, v2]
    assert detail["versions"][0]["manifest"] == [{"policy_version_id": a}, {"policy_version_id": b}]
    assert detail["versions"][1]["manifest"] == [{"policy_version_id": b}, {"policy_version_id": a}]
    event = db.execute(
        "SELECT metadata_json FROM audit_events WHERE event_type = 'policy_set_version.created'"
        " ORDER BY occurred_at LIMIT 1"
    ).fetchone()
    assert event["metadata_json"]["manifest"] == [a, b]
    with pytest.raises(psycopg.errors.RestrictViolation):
        db.execute("UPDATE policy_set_versions SET version = 9 WHERE id = %s", (v1["id"],))
    with pytest.raises(psycopg.errors.RestrictViolation):
        db.execute(
            "DELETE FROM policy_set_version_entries WHERE policy_set_version_id = %s", (v1["id"],)
        )


def test_manifest_shape_errors_are_400(client: TestClient, zone: dict[str, Any]) -> None:
    z = zone["id"]
    a = versions_of(client, z, ALLOW)[0]
    url = f"/v1/zones/{z}/policy-sets/{create_set(client, z)['id']}/versions"
    for body, path in [
        ({"manifest": []}, ["manifest"]),
        ({}, []),
        ({"manifest": [{"policy_version_id": a}] * 2}, ["manifest", 1, "policy_version_id"]),
        ({"manifest": [{"policy_version_id": str(uuid7())}] * 257}, ["manifest"]),
        ({"manifest": [{"policy_version_id": "nope"}]}, ["manifest", 0, "policy_version_id"]),
        ({"manifest": [{"id": a}]}, None),
        ({"manifest": [{"policy_version_id": a}], "x": 1}, ["x"]),
    ]:
        response = client.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "invalid_body"
        if path is not None:
            assert response.json()["issues"][0]["path"] == path, body


def test_manifest_of_256_entries_is_accepted(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    ids = [insert_raw_policy(db, z, rego(f"m{i}")) for i in range(256)]
    pset = create_set(client, z)
    version = create_set_version(client, z, pset["id"], ids)
    count = db.execute(
        "SELECT count(*) AS n FROM policy_set_version_entries WHERE policy_set_version_id = %s",
        (version["id"],),
    ).fetchone()
    assert count["n"] == 256


def test_manifest_versions_must_be_live_versions_of_this_zone(
    client: TestClient, zone: dict[str, Any], make_zone: Any
) -> None:
    z = zone["id"]
    live = versions_of(client, z, ALLOW)[0]
    foreign = versions_of(client, make_zone()["id"], ALLOW)[0]
    archived_policy = create_policy(client, z)
    client.delete(f"/v1/zones/{z}/policies/{archived_policy['id']}")
    url = f"/v1/zones/{z}/policy-sets/{create_set(client, z)['id']}/versions"
    for missing in (str(uuid7()), foreign, archived_policy["version"]["id"]):
        response = client.post(
            url,
            json={"manifest": [{"policy_version_id": live}, {"policy_version_id": missing}]},
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "policy_version_not_found"
        assert missing in response.json()["detail"]


def test_manifest_policy_breaking_the_contract_is_422(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    bad = insert_raw_policy(db, z, "package caracal.authz\n\nallow := true\n")
    good = versions_of(client, z, ALLOW)[0]
    pset = create_set(client, z)
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/versions",
        json={"manifest": [{"policy_version_id": good}, {"policy_version_id": bad}]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_policy_contract"
    assert bad in response.json()["detail"]
    assert client.get(f"/v1/zones/{z}/policy-sets/{pset['id']}").json()["versions"] == []


# -- activation -------------------------------------------------------------------------------


def test_activation_sets_the_zone_state_and_writes_the_outbox_row(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    pset = create_set(client, z)
    version = create_set_version(client, z, pset["id"], versions_of(client, z, ALLOW))
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/activate", json={"version_id": version["id"]}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"activated", "version_id", "shadow_version_id", "outbox_id"}
    assert body["activated"] is True
    assert body["version_id"] == version["id"]
    assert body["shadow_version_id"] is None
    outbox = db.execute("SELECT * FROM outbox WHERE id = %s", (body["outbox_id"],)).fetchone()
    assert outbox["zone_id"] == z
    assert outbox["topic"] == "caracal.policy.invalidate"
    assert outbox["payload"]["version_id"] == version["id"]
    assert outbox["payload"]["generation"] == 1
    state = db.execute("SELECT * FROM zone_policy_state WHERE zone_id = %s", (z,)).fetchone()
    assert str(state["active_version_id"]) == version["id"]
    assert state["shadow_version_id"] is None
    got = client.get(f"/v1/zones/{z}/policy-sets/{pset['id']}").json()
    assert got["active_version_id"] == version["id"]
    assert client.get(f"/v1/zones/{z}/policy-sets").json()[0]["active_version_id"] == version["id"]
    event = db.execute(
        "SELECT request_id, metadata_json FROM audit_events"
        " WHERE event_type = 'policy_set.activated'"
    ).fetchone()
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["metadata_json"]["outbox_id"] == body["outbox_id"]
    assert event["metadata_json"]["version_id"] == version["id"]
    assert event["metadata_json"]["previous_version_id"] is None


def test_activating_another_set_moves_the_active_version_and_shadow(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    first, second = create_set(client, z, "first"), create_set(client, z, "second")
    a1 = create_set_version(client, z, first["id"], versions_of(client, z, ALLOW))
    a2 = create_set_version(client, z, first["id"], versions_of(client, z, DENY))
    b1 = create_set_version(client, z, second["id"], versions_of(client, z, ALLOW))
    body = activate(client, z, first["id"], a1["id"], shadow_version_id=a2["id"])
    assert body["shadow_version_id"] == a2["id"]
    got = client.get(f"/v1/zones/{z}/policy-sets/{first['id']}").json()
    assert (got["active_version_id"], got["shadow_version_id"]) == (a1["id"], a2["id"])
    activate(client, z, second["id"], b1["id"], shadow_version_id=a1["id"])
    listed = {s["id"]: s for s in client.get(f"/v1/zones/{z}/policy-sets").json()}
    assert (listed[first["id"]]["active_version_id"], listed[first["id"]]["shadow_version_id"]) == (
        None,
        None,
    )
    assert listed[second["id"]]["active_version_id"] == b1["id"]
    assert listed[second["id"]]["shadow_version_id"] == a1["id"]
    states = db.execute("SELECT * FROM zone_policy_state WHERE zone_id = %s", (z,)).fetchall()
    assert len(states) == 1
    assert states[0]["generation"] == 2
    previous = db.execute(
        "SELECT metadata_json FROM audit_events WHERE event_type = 'policy_set.activated'"
        " ORDER BY occurred_at DESC, id DESC LIMIT 1"
    ).fetchone()["metadata_json"]
    assert previous["previous_version_id"] == a1["id"]
    assert previous["previous_shadow_version_id"] == a2["id"]


def test_activation_404s(client: TestClient, zone: dict[str, Any], make_zone: Any) -> None:
    z = zone["id"]
    pset, other = create_set(client, z), create_set(client, z)
    own = create_set_version(client, z, pset["id"], versions_of(client, z, ALLOW))
    of_other = create_set_version(client, z, other["id"], versions_of(client, z, ALLOW))
    foreign_zone = make_zone()["id"]
    foreign_set = create_set(client, foreign_zone)
    foreign = create_set_version(
        client, foreign_zone, foreign_set["id"], versions_of(client, foreign_zone, ALLOW)
    )
    url = f"/v1/zones/{z}/policy-sets/{pset['id']}/activate"
    for version_id in (str(uuid7()), of_other["id"], foreign["id"]):
        response = client.post(url, json={"version_id": version_id})
        assert response.status_code == 404
        assert response.json() == {"error": "version_not_found"}
    for shadow_id in (str(uuid7()), foreign["id"]):
        response = client.post(url, json={"version_id": own["id"], "shadow_version_id": shadow_id})
        assert response.status_code == 404
        assert response.json() == {"error": "shadow_version_not_found"}
    client.delete(f"/v1/zones/{z}/policy-sets/{other['id']}")
    response = client.post(url, json={"version_id": own["id"], "shadow_version_id": of_other["id"]})
    assert response.json() == {"error": "shadow_version_not_found"}
    assert client.post(url, json={"version_id": own["id"]}).status_code == 202


@pytest.mark.parametrize(
    "body",
    [{}, {"version_id": "nope"}, {"version_id": None}, {"version_id": str(uuid7()), "x": 1}],
)
def test_activation_bad_body(
    client: TestClient, zone: dict[str, Any], body: dict[str, Any]
) -> None:
    pset = create_set(client, zone["id"])
    response = client.post(f"/v1/zones/{zone['id']}/policy-sets/{pset['id']}/activate", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"


def test_archived_policy_blocks_the_next_activation(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    kept, archived = create_policy(client, z, ALLOW), create_policy(client, z, DENY)
    pset = create_set(client, z)
    version = create_set_version(
        client, z, pset["id"], [kept["version"]["id"], archived["version"]["id"]]
    )
    other = create_set_version(client, z, pset["id"], [kept["version"]["id"]])
    activate(client, z, pset["id"], version["id"])
    # Archiving a policy of the active set is allowed …
    assert client.delete(f"/v1/zones/{z}/policies/{archived['id']}").status_code == 204
    # … and the next activation of a set version that references it is refused.
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/activate", json={"version_id": version["id"]}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "referenced_policy_version_missing"
    assert archived["version"]["id"] in response.json()["detail"]
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/activate",
        json={"version_id": other["id"], "shadow_version_id": version["id"]},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "referenced_policy_version_missing"
    state = db.execute("SELECT generation FROM zone_policy_state WHERE zone_id = %s", (z,))
    assert state.fetchone()["generation"] == 1
    assert activate(client, z, pset["id"], other["id"])["version_id"] == other["id"]


def test_activation_rechecks_the_contract(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    bad = insert_raw_policy(db, z, "package caracal.authz\n\nallow := true\n")
    pset = create_set(client, z)
    version_id = insert_raw_set_version(db, z, pset["id"], [bad])
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/activate", json={"version_id": version_id}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_policy_contract"
    assert 'rule named "result"' in response.json()["detail"]
    good = create_set_version(client, z, pset["id"], versions_of(client, z, ALLOW))
    response = client.post(
        f"/v1/zones/{z}/policy-sets/{pset['id']}/activate",
        json={"version_id": good["id"], "shadow_version_id": version_id},
    )
    assert response.status_code == 422
    assert db.execute("SELECT count(*) AS n FROM zone_policy_state").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 0


def test_concurrent_activations_leave_exactly_one_active_version(
    client: TestClient, zone: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    z = zone["id"]
    sets = [create_set(client, z, f"s{i}") for i in range(4)]
    policy_version = versions_of(client, z, ALLOW)[0]
    versions = [
        (s["id"], create_set_version(client, z, s["id"], [policy_version])["id"])
        for s in sets
        for _ in range(2)
    ]

    def go(item: tuple[str, str]) -> dict[str, Any]:
        response = client.post(
            f"/v1/zones/{z}/policy-sets/{item[0]}/activate", json={"version_id": item[1]}
        )
        assert response.status_code == 202, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(go, versions))
    states = db.execute("SELECT * FROM zone_policy_state WHERE zone_id = %s", (z,)).fetchall()
    assert len(states) == 1
    assert states[0]["generation"] == len(versions)
    outbox = db.execute(
        "SELECT payload FROM outbox WHERE zone_id = %s ORDER BY (payload->>'generation')::int",
        (z,),
    ).fetchall()
    assert [o["payload"]["generation"] for o in outbox] == list(range(1, len(versions) + 1))
    assert outbox[-1]["payload"]["version_id"] == str(states[0]["active_version_id"])
    assert {r["outbox_id"] for r in results} == {
        str(r["id"]) for r in db.execute("SELECT id FROM outbox").fetchall()
    }
    owners = [s for s in client.get(f"/v1/zones/{z}/policy-sets").json() if s["active_version_id"]]
    assert len(owners) == 1
    assert owners[0]["active_version_id"] == str(states[0]["active_version_id"])
