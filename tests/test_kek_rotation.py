"""``rotate-kek``: every DEK rewrapped in one transaction, secrets still readable, reruns safe."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.rows import dict_row

from controlplane.app import create_app
from controlplane.cli.main import build_parser
from controlplane.keys import crypto
from controlplane.keys.provider_secrets import decrypt_provider_secrets
from tests.conftest import ADMIN_TOKEN, TEST_KEK, make_settings

NEW_KEK = crypto.Kek(bytes(range(100, 132)))


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    """The environment the command reads: the test database and the current (test) KEK."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CARACAL_KEK", base64.b64encode(TEST_KEK.key).decode())
    monkeypatch.setenv("CARACAL_DATA_DIR", str(tmp_path / "cli-data"))
    for name in ("CARACAL_KEK_FILE", "CARACAL_ENV"):
        monkeypatch.delenv(name, raising=False)
    new_file = tmp_path / "new.kek"
    new_file.write_text(base64.b64encode(NEW_KEK.key).decode() + "\n")
    return new_file


def rotate(new_file: Path | str) -> int:
    args = build_parser().parse_args(["rotate-kek", "--new-kek-file", str(new_file)])
    return args.func(args)


def deks(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    rows = db.execute("SELECT zone_id, kek_id, wrapped_dek, rotated_at FROM zone_deks").fetchall()
    return {row["zone_id"]: row for row in rows}


def provider_secrets(database_url: str, kek: crypto.Kek, zone_id: str, provider_id: str) -> Any:
    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(
            database_url, row_factory=dict_row
        ) as conn:
            return await decrypt_provider_secrets(conn, kek, zone_id, provider_id)

    return asyncio.run(run())


def test_rotation_rewraps_every_dek_and_keeps_secrets_readable(
    client: TestClient,
    make_zone: Any,
    db: Any,
    database_url: str,
    cli_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zones = [make_zone(), make_zone()]
    archived = make_zone()
    client.delete(f"/v1/zones/{archived['id']}")
    provider = client.post(
        f"/v1/zones/{zones[0]['id']}/providers",
        json={"identifier": "gh", "kind": "oauth2", "secret_config": {"client_secret": "rot8"}},
    ).json()
    before = deks(db)
    plain_before = {
        z: crypto.unwrap_dek(TEST_KEK, bytes(r["wrapped_dek"]), z) for z, r in before.items()
    }

    assert rotate(cli_env) == 0
    out, err = capsys.readouterr()
    assert f"{TEST_KEK.key_id} -> {NEW_KEK.key_id}: rewrapped 3 zone DEK(s), 0 already" in out
    assert "CARACAL_KEK" in err
    assert NEW_KEK.key.hex() not in out + err
    after = deks(db)
    assert set(after) == {z["id"] for z in [*zones, archived]}
    for zone_id, row in after.items():
        assert row["kek_id"] == NEW_KEK.key_id and row["rotated_at"] is not None
        assert (
            crypto.unwrap_dek(NEW_KEK, bytes(row["wrapped_dek"]), zone_id) == plain_before[zone_id]
        )
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap_dek(TEST_KEK, bytes(row["wrapped_dek"]), zone_id)
    zone_id = zones[0]["id"]
    assert provider_secrets(database_url, NEW_KEK, zone_id, provider["id"]) == {
        "client_secret": "rot8"
    }
    with pytest.raises(crypto.DecryptionError):
        provider_secrets(database_url, TEST_KEK, zone_id, provider["id"])

    # a service started with the new KEK works with the old zones' secrets
    settings = make_settings(database_url, tmp_path, kek=base64.b64encode(NEW_KEK.key).decode())
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        fresh.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        response = fresh.patch(
            f"/v1/zones/{zone_id}/providers/{provider['id']}",
            json={"secret_config": {"api_key": "more"}},
        )
        assert response.status_code == 200, response.text
    assert provider_secrets(database_url, NEW_KEK, zone_id, provider["id"]) == {
        "client_secret": "rot8",
        "api_key": "more",
    }


def test_rerunning_is_safe_and_moves_only_deks_still_under_the_old_kek(
    make_zone: Any, db: Any, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_zone()
    assert rotate(cli_env) == 0
    late = make_zone()  # created by a process still running with the old KEK
    capsys.readouterr()
    assert rotate(cli_env) == 0
    out = capsys.readouterr().out
    assert "rewrapped 1 zone DEK(s), 1 already under the new KEK" in out
    assert f"rewrapped the DEK of zone {late['id']}" in out
    assert {row["kek_id"] for row in deks(db).values()} == {NEW_KEK.key_id}


def test_a_dek_under_an_unknown_kek_aborts_the_whole_rotation(
    make_zone: Any, db: Any, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = make_zone(), make_zone()
    stranger = crypto.Kek(bytes(32))
    db.execute(
        "UPDATE zone_deks SET kek_id = %s, wrapped_dek = %s WHERE zone_id = %s",
        (stranger.key_id, crypto.wrap_dek(stranger, crypto.new_dek(), bad["id"]), bad["id"]),
    )
    before = deks(db)
    assert rotate(cli_env) == 1
    err = capsys.readouterr().err
    assert bad["id"] in err and "nothing was changed" in err
    assert deks(db) == before
    assert before[good["id"]]["kek_id"] == TEST_KEK.key_id


def test_usage_errors(
    cli_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    same = tmp_path / "same.kek"
    same.write_bytes(TEST_KEK.key)
    assert rotate(same) == 2
    assert "is the current KEK" in capsys.readouterr().err
    assert rotate(tmp_path / "missing.kek") == 2
    err = capsys.readouterr().err
    assert "--new-kek-file" in err and "CARACAL_KEK_FILE" not in err
    short = tmp_path / "short.kek"
    short.write_text("c2hvcnQ=")
    assert rotate(short) == 2
    err = capsys.readouterr().err
    assert "--new-kek-file" in err and "CARACAL_KEK_FILE" not in err
    monkeypatch.delenv("CARACAL_KEK")
    assert rotate(cli_env) == 2
    assert "no current KEK" in capsys.readouterr().err
