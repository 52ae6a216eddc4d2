"""Public signing keys: ``/.well-known/jwks.json`` and ``/v1/zones/{zoneId}/jwks.json``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response, get
from litestar.di import Provide

from controlplane.api.common import services_of
from controlplane.keys.crypto import public_jwk
from controlplane.registry.zones import require_zone
from controlplane.services import Services

CACHE_CONTROL = "public, max-age=300"

# Current keys and retired keys still inside their overlap window.
_PUBLISHED = (
    "SELECT k.zone_id, k.kid, k.public_key FROM zone_signing_keys k"
    " JOIN zones z ON z.id = k.zone_id AND z.archived_at IS NULL"
    " WHERE (k.retired_at IS NULL OR k.expires_at > now())"
)


class Jwk(msgspec.Struct):
    """An Ed25519 public key (RFC 8037)."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class Jwks(msgspec.Struct):
    """A JSON Web Key Set."""

    keys: list[Jwk]


def _jwks(rows: list[dict[str, Any]]) -> Response[Jwks]:
    keys = [Jwk(**public_jwk(bytes(row["public_key"]), row["kid"])) for row in rows]
    return Response(Jwks(keys=keys), headers={"Cache-Control": CACHE_CONTROL})


_deps = {"services": Provide(services_of, sync_to_thread=False)}


@get("/.well-known/jwks.json", opt={"scope": "public"}, dependencies=_deps, tags=["keys"])
async def global_jwks(services: Services) -> Response[Jwks]:
    """Every active zone's current and still-valid previous public keys."""
    async with services.db.transaction() as conn:
        cur = await conn.execute(_PUBLISHED + " ORDER BY k.zone_id, k.created_at DESC")
        return _jwks(await cur.fetchall())


@get(
    "/v1/zones/{zone_id:str}/jwks.json", opt={"scope": "public"}, dependencies=_deps, tags=["keys"]
)
async def zone_jwks(zone_id: str, services: Services) -> Response[Jwks]:
    """One zone's current and still-valid previous public keys (no auth)."""
    async with services.db.transaction() as conn:
        await require_zone(conn, zone_id)
        cur = await conn.execute(
            _PUBLISHED + " AND k.zone_id = %s ORDER BY k.created_at DESC", (zone_id,)
        )
        return _jwks(await cur.fetchall())
