"""The runtime's provider-secret decryption: round trip, wrong DEK, moved or tampered ciphertext."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.rows import dict_row
from uuid6 import uuid7

from controlplane.db.pool import Conn
from controlplane.keys import crypto
from controlplane.keys.provider_secrets import decrypt_provider_secrets, open_secrets, seal_secrets
from controlplane.keys.zone_keys import load_dek
from tests.conftest import TEST_KEK

T = TypeVar("T")
SECRETS = {
    "client_secret": "s3cr3t",
    "auth.private_key": {"kty": "OKP", "d": "x"},
    "passphrase": 1234,
}


def with_conn(database_url: str, work: Callable[[Conn], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await psycopg.AsyncConnection.connect(
            database_url, row_factory=dict_row
        ) as conn:
            return await work(conn)

    return asyncio.run(run())


def decrypt(database_url: str, zone_id: str, provider_id: Any) -> dict[str, Any]:
    return with_conn(
        database_url, lambda conn: decrypt_provider_secrets(conn, TEST_KEK, zone_id, provider_id)
    )


def make_provider(client: TestClient, zone_id: str, secret_config: dict[str, Any]) -> str:
    body = {"identifier": f"p-{uuid7().hex}", "kind": "apikey", "secret_config": secret_config}
    response = client.post(f"/v1/zones/{zone_id}/providers", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": v} -> {"a": {"b": v}} (what a caller sends)."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return out


def test_round_trip(client: TestClient, zone: dict[str, Any], database_url: str) -> None:
    provider_id = make_provider(client, zone["id"], nested(SECRETS))
    assert decrypt(database_url, zone["id"], provider_id) == SECRETS


def test_a_provider_without_secrets_has_none(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    provider_id = make_provider(client, zone["id"], {})
    assert decrypt(database_url, zone["id"], provider_id) == {}


def test_unknown_foreign_or_archived_provider_is_a_lookup_error(
    client: TestClient, make_zone: Any, database_url: str
) -> None:
    zone, other = make_zone(), make_zone()
    provider_id = make_provider(client, zone["id"], {"api_key": "k"})
    with pytest.raises(LookupError):
        decrypt(database_url, zone["id"], uuid7())
    with pytest.raises(LookupError):
        decrypt(database_url, other["id"], provider_id)
    assert client.delete(f"/v1/zones/{zone['id']}/providers/{provider_id}").status_code == 204
    with pytest.raises(LookupError):
        decrypt(database_url, zone["id"], provider_id)


def test_another_zones_dek_does_not_decrypt(
    client: TestClient, make_zone: Any, db: Any, database_url: str
) -> None:
    zone, other = make_zone(), make_zone()
    provider_id = make_provider(client, zone["id"], {"api_key": "zone-a-key"})
    blob = db.execute("SELECT secrets_enc FROM providers WHERE id = %s", (provider_id,)).fetchone()
    other_dek = with_conn(database_url, lambda conn: load_dek(conn, TEST_KEK, other["id"]))
    with pytest.raises(crypto.DecryptionError):
        open_secrets(other_dek, provider_id, blob["secrets_enc"])
    # the ciphertext copied into a provider row of the other zone (same id) does not open
    db.execute(
        "INSERT INTO providers (zone_id, id, name, identifier, kind, secret_config_keys,"
        " secrets_enc) SELECT %s, id, name, identifier, kind, secret_config_keys, secrets_enc"
        " FROM providers WHERE id = %s",
        (other["id"], provider_id),
    )
    with pytest.raises(crypto.DecryptionError):
        decrypt(database_url, other["id"], provider_id)


def test_ciphertext_moved_to_another_provider_does_not_decrypt(
    client: TestClient, zone: dict[str, Any], db: Any, database_url: str
) -> None:
    source = make_provider(client, zone["id"], {"api_key": "source-key"})
    target = make_provider(client, zone["id"], {"api_key": "target-key"})
    db.execute(
        "UPDATE providers SET secrets_enc = (SELECT secrets_enc FROM providers WHERE id = %s)"
        " WHERE id = %s",
        (source, target),
    )
    with pytest.raises(crypto.DecryptionError):
        decrypt(database_url, zone["id"], target)


@pytest.mark.parametrize("position", [0, 12, 20, -1])
def test_tampered_ciphertext_does_not_decrypt(
    client: TestClient, zone: dict[str, Any], db: Any, database_url: str, position: int
) -> None:
    provider_id = make_provider(client, zone["id"], {"api_key": "tamper-me"})
    row = db.execute("SELECT secrets_enc FROM providers WHERE id = %s", (provider_id,)).fetchone()
    blob = bytearray(row["secrets_enc"])
    blob[position] ^= 0x01
    db.execute("UPDATE providers SET secrets_enc = %s WHERE id = %s", (bytes(blob), provider_id))
    with pytest.raises(crypto.DecryptionError):
        decrypt(database_url, zone["id"], provider_id)


def test_seal_and_open_without_a_database() -> None:
    dek, provider_id = crypto.new_dek(), uuid7()
    assert seal_secrets(dek, provider_id, {}) is None
    assert open_secrets(dek, provider_id, None) == {}
    blob = seal_secrets(dek, provider_id, SECRETS)
    assert blob is not None and b"s3cr3t" not in blob
    assert open_secrets(dek, str(provider_id), blob) == SECRETS
    with pytest.raises(crypto.DecryptionError):
        open_secrets(crypto.new_dek(), provider_id, blob)
    with pytest.raises(crypto.DecryptionError):
        open_secrets(dek, uuid7(), blob)
