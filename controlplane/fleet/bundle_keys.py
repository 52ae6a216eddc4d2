"""The zone's bundle-signing key in the database: created on first use, sealed under the DEK.

Zones made before OPA fleets existed have no key; the first bundle or ``bundle-key`` request
creates one (``INSERT … ON CONFLICT DO NOTHING``, so concurrent first requests, in any
process, agree on one key). Its kid is the zone id, the name OPA's ``keys`` section uses.
The private half is sealed under the zone DEK: ``rotate-kek`` rewraps the DEK and the key
follows without being touched.
"""

from __future__ import annotations

from typing import Any

from controlplane.db.pool import Conn
from controlplane.fleet.signing import BundleSigningKey, new_bundle_key, open_bundle_key
from controlplane.keys import crypto
from controlplane.keys.zone_keys import load_dek

__all__ = ["bundle_key", "bundle_key_row"]


async def bundle_key_row(conn: Conn, kek: crypto.Kek, zone_id: str) -> dict[str, Any]:
    """The zone's key row ``{kid, public_pem, sealed_private}``, created if missing."""
    cur = await conn.execute(
        "SELECT kid, public_pem, sealed_private FROM zone_bundle_keys WHERE zone_id = %s",
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is not None:
        return row
    public_pem, sealed = new_bundle_key(await load_dek(conn, kek, zone_id), zone_id, zone_id)
    await conn.execute(
        "INSERT INTO zone_bundle_keys (zone_id, kid, public_pem, sealed_private)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (zone_id) DO NOTHING",
        (zone_id, zone_id, public_pem, sealed),
    )
    cur = await conn.execute(
        "SELECT kid, public_pem, sealed_private FROM zone_bundle_keys WHERE zone_id = %s",
        (zone_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def bundle_key(conn: Conn, kek: crypto.Kek, zone_id: str) -> BundleSigningKey:
    """The zone's unsealed bundle-signing key (created if missing)."""
    row = await bundle_key_row(conn, kek, zone_id)
    dek = await load_dek(conn, kek, zone_id)
    return open_bundle_key(
        dek, zone_id, row["kid"], row["public_pem"], bytes(row["sealed_private"])
    )
