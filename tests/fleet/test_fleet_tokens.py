"""The ``pdp`` token scope: its zone's three OPA routes, nothing else."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.api.policy_helpers import ALLOW, active_set
from tests.conftest import bearer
from tests.fleet.opa_protocol import log_chunk, log_headers, status_report
from tests.fleet.test_fleet_bundle import pdp_token


def test_pdp_token_reaches_only_its_zones_opa_routes(
    client: TestClient, make_zone: Any, zone_token: Any
) -> None:
    zone_id, other_id = make_zone()["id"], make_zone()["id"]
    active_set(client, zone_id, ALLOW)
    active_set(client, other_id, ALLOW)
    token = pdp_token(client, zone_id)
    auth = bearer(token)

    assert client.get(f"/v1/zones/{zone_id}/opa/bundles/active", headers=auth).status_code == 200
    assert (
        client.post(
            f"/v1/zones/{zone_id}/opa/logs", content=log_chunk([]), headers=log_headers(token)
        ).status_code
        == 204
    )
    status = client.post(
        f"/v1/zones/{zone_id}/opa/status", json=status_report("opa-1", None), headers=auth
    )
    assert status.status_code == 204

    for method, path in [
        ("GET", f"/v1/zones/{zone_id}"),
        ("GET", f"/v1/zones/{zone_id}/pdp-instances"),
        ("GET", f"/v1/zones/{zone_id}/audit"),
        ("GET", f"/v1/zones/{zone_id}/policies"),
        ("POST", f"/v1/zones/{zone_id}/decisions"),
        ("GET", "/v1/zones"),
        ("GET", "/v1/admin-tokens"),
        ("GET", f"/v1/zones/{other_id}/opa/bundles/active"),
        ("POST", f"/v1/zones/{other_id}/opa/status"),
    ]:
        response = client.request(method, path, headers=auth, json={"input": {}})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"] == "forbidden", (method, path)

    # zone and global tokens of the zone may call the OPA routes too; another zone's may not
    own = bearer(zone_token(zone_id))
    assert client.get(f"/v1/zones/{zone_id}/opa/bundles/active", headers=own).status_code == 200
    assert client.get(f"/v1/zones/{zone_id}/pdp-instances", headers=own).status_code == 200
    foreign = client.get(
        f"/v1/zones/{zone_id}/opa/bundles/active", headers=bearer(zone_token(other_id))
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "admin_token_zone_mismatch"
    assert client.get(f"/v1/zones/{zone_id}/opa/bundles/active").status_code == 200
    # the bundle key is public
    assert client.get(f"/v1/zones/{zone_id}/opa/bundle-key", headers={}).status_code == 200
    missing = client.get(f"/v1/zones/{zone_id}/opa/bundles/active", headers={"Authorization": ""})
    assert missing.status_code == 401


def test_pdp_token_needs_a_zone(client: TestClient, zone: dict) -> None:
    response = client.post("/v1/admin-tokens", json={"scope": "pdp"})
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["zone_id"]
    unknown = client.post("/v1/admin-tokens", json={"scope": "pdp", "zone_id": "nope"})
    assert unknown.status_code == 404
    listed = client.get("/v1/admin-tokens").json()
    assert all(t["scope"] != "pdp" for t in listed)
    pdp_token(client, zone["id"])
    assert [t["zone_id"] for t in client.get("/v1/admin-tokens").json() if t["scope"] == "pdp"] == [
        zone["id"]
    ]


def test_cli_creates_pdp_tokens(
    client: TestClient, zone: dict, database_url: str, monkeypatch: Any, capsys: Any
) -> None:
    from controlplane.cli.main import build_parser

    monkeypatch.setenv("DATABASE_URL", database_url)
    args = build_parser().parse_args(["admin-token", "create", "--scope", "pdp"])
    assert args.func(args) == 2
    assert "--zone is required with --scope pdp" in capsys.readouterr().err
    args = build_parser().parse_args(
        ["admin-token", "create", "--scope", "pdp", "--zone", zone["id"]]
    )
    assert args.func(args) == 0
    token = capsys.readouterr().out.split()[0]
    assert token.startswith("cpk_")
    active_set(client, zone["id"], ALLOW)
    response = client.get(f"/v1/zones/{zone['id']}/opa/bundles/active", headers=bearer(token))
    assert response.status_code == 200
