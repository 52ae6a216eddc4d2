"""The bundle route as OPA's downloader sees it: signed tarball, ETag, 304, 404s, the key."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.cli.main import build_parser
from controlplane.keys import crypto
from tests.api.policy_helpers import ADMIN_ONLY, ALLOW, DENY, active_set, sha
from tests.conftest import ADMIN_TOKEN, TEST_KEK, bearer, make_settings
from tests.fleet.opa_protocol import (
    BUNDLE_MEDIA_TYPE,
    BundleError,
    Downloader,
    opa_file_hash,
    read_tarball,
    verify_bundle,
)


def pdp_token(client: TestClient, zone_id: str) -> str:
    response = client.post("/v1/admin-tokens", json={"scope": "pdp", "zone_id": zone_id})
    assert response.status_code == 201, response.text
    assert response.json()["scope"] == "pdp"
    return response.json()["token"]


def bundle_key(client: TestClient, zone_id: str) -> dict[str, str]:
    response = client.get(f"/v1/zones/{zone_id}/opa/bundle-key", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    return response.json()


def bundle_url(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/opa/bundles/active"


def test_the_bundle_is_a_signed_tarball_opa_accepts(client: TestClient, zone: dict) -> None:
    zone_id = zone["id"]
    made = active_set(client, zone_id, ADMIN_ONLY, DENY)
    token = pdp_token(client, zone_id)
    key = bundle_key(client, zone_id)
    assert key["kid"] == zone_id and key["algorithm"] == "ES256"
    assert key["key"].startswith("-----BEGIN PUBLIC KEY-----")

    response = client.get(bundle_url(zone_id), headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == BUNDLE_MEDIA_TYPE
    assert response.headers["etag"].startswith('"')
    files = verify_bundle(response.content, {zone_id: key["key"]}, keyid=zone_id)

    manifest = json.loads(files[".manifest"])
    version = made["version"]
    assert manifest == {
        "revision": version["id"],
        "roots": ["caracal"],
        "rego_version": 1,
        "metadata": {
            "zone_id": zone_id,
            "policy_set_id": made["set"]["id"],
            "policy_set_version_id": version["id"],
            "manifest_sha256": version["manifest_sha256"],
        },
    }
    policy_files = sorted(n for n in files if n.startswith("caracal/policies/"))
    assert policy_files == sorted(
        f"caracal/policies/{p['version']['id']}.rego" for p in made["policies"]
    )
    first = files[f"caracal/policies/{made['policies'][0]['version']['id']}.rego"].decode()
    hex_id = made["policies"][0]["version"]["id"].replace("-", "")
    assert first.startswith(f"package caracal.policies.p_{hex_id}\n")
    assert first.split("\n", 1)[1] == ADMIN_ONLY.split("\n", 1)[1]  # only the package changes
    assert "package caracal.authz" in files["caracal/authz.rego"].decode()
    assert set(files) == {".manifest", "caracal/authz.rego", *policy_files}


def test_the_verifier_refuses_what_opa_refuses(client: TestClient, zone: dict) -> None:
    """The test's verifier can fail: tampered, unlisted, missing and foreign-key bundles."""
    zone_id = zone["id"]
    active_set(client, zone_id, ALLOW)
    key = bundle_key(client, zone_id)
    body = client.get(bundle_url(zone_id)).content
    verify_bundle(body, {zone_id: key["key"]})

    def rebuilt(change: Any) -> bytes:
        files = read_tarball(body)
        change(files)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo("/" + name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return gzip.compress(raw.getvalue())

    def tamper(files: dict[str, bytes]) -> None:
        files["caracal/authz.rego"] += b"\n# changed\n"

    def add(files: dict[str, bytes]) -> None:
        files["caracal/extra.rego"] = b"package caracal.extra\n"

    def drop(files: dict[str, bytes]) -> None:
        del files["caracal/authz.rego"]

    for change, message in [
        (tamper, "digest mismatch"),
        (add, "not included in bundle signature"),
        (drop, "not found in the target bundle"),
    ]:
        with pytest.raises(BundleError, match=message):
            verify_bundle(rebuilt(change), {zone_id: key["key"]})
    other = bundle_key(client, client.post("/v1/zones", json={"name": "Other"}).json()["id"])
    with pytest.raises(BundleError, match="could not verify"):
        verify_bundle(body, {zone_id: other["key"]})


def test_manifest_digest_is_opa_structured_hash(client: TestClient, zone: dict) -> None:
    """``.manifest`` is hashed as parsed JSON: key order and spacing do not matter."""
    zone_id = zone["id"]
    active_set(client, zone_id, ALLOW)
    files = read_tarball(client.get(bundle_url(zone_id)).content)
    manifest = json.loads(files[".manifest"])
    reordered = json.dumps(dict(reversed(list(manifest.items()))), indent=3).encode()
    assert opa_file_hash(".manifest", reordered) == opa_file_hash(".manifest", files[".manifest"])
    assert opa_file_hash("x.rego", b"a") == sha("a")


def test_etag_304_and_downloader_cycle(client: TestClient, zone: dict) -> None:
    zone_id = zone["id"]
    first = active_set(client, zone_id, ALLOW)
    token = pdp_token(client, zone_id)
    key = bundle_key(client, zone_id)
    opa = Downloader(
        client,  # type: ignore[arg-type]  # TestClient speaks httpx's API
        bundle_url(zone_id),
        {zone_id: key["key"]},
        keyid=zone_id,
    )
    client.headers["Authorization"] = f"Bearer {token}"
    assert opa.one_shot() == 200
    assert opa.revision == first["version"]["id"]
    etag = opa.etag
    assert opa.one_shot() == 304 and opa.etag == etag
    response = client.get(bundle_url(zone_id), headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == etag
    # If-None-Match lists and weak forms match as HTTP says
    listed = client.get(bundle_url(zone_id), headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status_code == 304

    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    second = active_set(client, zone_id, DENY)
    client.headers["Authorization"] = f"Bearer {token}"
    assert opa.one_shot() == 200
    assert opa.revision == second["version"]["id"] and opa.etag != etag


def test_no_active_set_and_unknown_zone_are_404(client: TestClient, zone: dict) -> None:
    response = client.get(bundle_url(zone["id"]))
    assert response.status_code == 404
    assert response.json()["error"] == "no_active_policy_set"
    response = client.get(bundle_url("no-such-zone"))
    assert response.status_code == 404 and response.json()["error"] == "zone_not_found"
    assert client.get("/v1/zones/no-such-zone/opa/bundle-key").status_code == 404


def test_etag_is_the_same_in_every_process(client: TestClient, zone: dict, settings: Any) -> None:
    """Replicas behind a load balancer give one ETag for one active set, so an OPA switching
    replica gets 304, and the same key (one per zone, made once)."""
    zone_id = zone["id"]
    active_set(client, zone_id, ALLOW)
    first = client.get(bundle_url(zone_id))
    with TestClient(create_app(settings, kek=TEST_KEK)) as other:
        other.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        second = other.get(bundle_url(zone_id))
        assert other.get(f"/v1/zones/{zone_id}/opa/bundle-key").json() == bundle_key(
            client, zone_id
        )
    assert first.headers["etag"] == second.headers["etag"]


def test_bundle_key_is_sealed_and_survives_kek_rotation(
    client: TestClient,
    zone: dict,
    db: Any,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone_id = zone["id"]
    active_set(client, zone_id, ALLOW)
    key = bundle_key(client, zone_id)
    row = db.execute(
        "SELECT kid, public_pem, sealed_private FROM zone_bundle_keys WHERE zone_id = %s",
        (zone_id,),
    ).fetchone()
    assert row["kid"] == zone_id and row["public_pem"] == key["key"]
    assert b"PRIVATE" not in bytes(row["sealed_private"])

    new_kek = crypto.Kek(bytes(range(100, 132)))
    new_file = tmp_path / "new.kek"
    new_file.write_text(base64.b64encode(new_kek.key).decode())
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CARACAL_KEK", base64.b64encode(TEST_KEK.key).decode())
    monkeypatch.setenv("CARACAL_DATA_DIR", str(tmp_path / "cli"))
    args = build_parser().parse_args(["rotate-kek", "--new-kek-file", str(new_file)])
    assert args.func(args) == 0

    settings = make_settings(database_url, tmp_path, kek=base64.b64encode(new_kek.key).decode())
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        body = fresh.get(bundle_url(zone_id), headers=bearer(ADMIN_TOKEN))
        assert body.status_code == 200, body.text
        verify_bundle(body.content, {zone_id: key["key"]}, keyid=zone_id)
