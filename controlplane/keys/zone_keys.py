"""Per-zone key material: the wrapped DEK and the sealed Ed25519 signing keys."""

from __future__ import annotations

from controlplane.db.pool import Conn
from controlplane.keys import crypto


async def provision_zone_keys(conn: Conn, kek: crypto.Kek, zone_id: str) -> None:
    """Create the zone's DEK (wrapped by the KEK) and its first signing key."""
    dek = crypto.new_dek()
    await conn.execute(
        "INSERT INTO zone_deks (zone_id, kek_id, wrapped_dek) VALUES (%s, %s, %s)",
        (zone_id, kek.key_id, crypto.wrap_dek(kek, dek, zone_id)),
    )
    await insert_signing_key(conn, dek, zone_id)


async def insert_signing_key(conn: Conn, dek: bytes, zone_id: str) -> str:
    """Generate a new current signing key for the zone, sealed under its DEK; return its kid."""
    private_raw, public_raw = crypto.new_signing_key()
    kid = crypto.key_id_for(public_raw)
    await conn.execute(
        "INSERT INTO zone_signing_keys (zone_id, kid, public_key, sealed_private)"
        " VALUES (%s, %s, %s, %s)",
        (zone_id, kid, public_raw, crypto.seal_signing_key(dek, private_raw, zone_id, kid)),
    )
    return kid


async def load_dek(conn: Conn, kek: crypto.Kek, zone_id: str) -> bytes:
    """Unwrap the zone's DEK."""
    cur = await conn.execute("SELECT wrapped_dek FROM zone_deks WHERE zone_id = %s", (zone_id,))
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"zone {zone_id!r} has no DEK")
    return crypto.unwrap_dek(kek, bytes(row["wrapped_dek"]), zone_id)


async def reseal_signing_key(
    conn: Conn, kek: crypto.Kek, zone_id: str, overlap_seconds: int
) -> str:
    """Replace the current signing key; the old public key stays listed for the overlap."""
    await conn.execute(
        "UPDATE zone_signing_keys SET retired_at = now(),"
        " expires_at = now() + make_interval(secs => %s)"
        " WHERE zone_id = %s AND retired_at IS NULL",
        (overlap_seconds, zone_id),
    )
    return await insert_signing_key(conn, await load_dek(conn, kek, zone_id), zone_id)


async def current_signing_key(conn: Conn, kek: crypto.Kek, zone_id: str) -> tuple[str, bytes]:
    """The zone's current ``(kid, private_raw)``."""
    cur = await conn.execute(
        "SELECT kid, sealed_private FROM zone_signing_keys"
        " WHERE zone_id = %s AND retired_at IS NULL",
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"zone {zone_id!r} has no signing key")
    dek = await load_dek(conn, kek, zone_id)
    private = crypto.unseal_signing_key(dek, bytes(row["sealed_private"]), zone_id, row["kid"])
    return row["kid"], private
