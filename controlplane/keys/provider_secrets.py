"""Provider secrets at rest, and the function the runtime uses to read them.

A provider's secrets are one JSON object ``{dotted path: value}`` (``auth.client_secret``),
encrypted with AES-256-GCM under the zone DEK with the provider id as associated data and
stored in ``providers.secrets_enc``; ``providers.secret_config_keys`` lists its paths. One
ciphertext per provider binds every value to its path and to its provider: a ciphertext
copied to another provider or zone, or altered, does not decrypt.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from controlplane.db.pool import Conn
from controlplane.keys import crypto
from controlplane.keys.zone_keys import load_dek


def seal_secrets(dek: bytes, provider_id: UUID | str, secrets: dict[str, Any]) -> bytes | None:
    """The stored form of ``secrets`` (None when there are none)."""
    if not secrets:
        return None
    return crypto.encrypt_json(dek, secrets, aad=str(UUID(str(provider_id))))


def open_secrets(dek: bytes, provider_id: UUID | str, blob: bytes | None) -> dict[str, Any]:
    """Inverse of `seal_secrets`; raises `crypto.DecryptionError` on any mismatch."""
    if blob is None:
        return {}
    value = crypto.decrypt_json(dek, bytes(blob), aad=str(UUID(str(provider_id))))
    if not isinstance(value, dict):
        raise crypto.DecryptionError("provider secrets are not an object")
    return value


async def decrypt_provider_secrets(
    conn: Conn, kek: crypto.Kek, zone_id: str, provider_id: UUID | str
) -> dict[str, Any]:
    """The decrypted secrets (dotted path -> value) of an active provider, for the runtime.

    Raises `LookupError` for an unknown or archived provider and `crypto.DecryptionError`
    when the ciphertext does not open under the zone's DEK (tampered, or from elsewhere).
    Never log or return the result to an admin caller.
    """
    cur = await conn.execute(
        "SELECT secrets_enc FROM providers WHERE zone_id = %s AND id = %s AND archived_at IS NULL",
        (zone_id, UUID(str(provider_id))),
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"provider {provider_id} not found in zone {zone_id!r}")
    if row["secrets_enc"] is None:
        return {}
    dek = await load_dek(conn, kek, zone_id)
    return open_secrets(dek, provider_id, row["secrets_enc"])
