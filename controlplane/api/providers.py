"""Providers: ``/v1/zones/{zoneId}/providers``, secrets encrypted under the zone DEK.

``config_json`` and ``secret_config`` are merged and every secret field (at any depth, see
`controlplane.secret_fields`) is taken out, encrypted (`controlplane.provider_secrets`) and
listed by dotted path in ``secret_config_keys``; secret values are never returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.api.common import (
    actor_id,
    parse_uuid,
    require_zone,
    returning_unique,
    services_of,
)
from controlplane.api.fields import Identifier, NonEmpty
from controlplane.audit.events import record_event
from controlplane.db.pool import Conn
from controlplane.http.errors import ApiError, invalid_body
from controlplane.keys.provider_secrets import open_secrets, seal_secrets
from controlplane.keys.secret_fields import split_secrets
from controlplane.keys.zone_keys import load_dek
from controlplane.services import Services

ProviderKind = Literal["oauth2", "oidc", "apikey", "workload"]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class Provider(msgspec.Struct):
    """Provider object (secret values never appear)."""

    id: str
    zone_id: str
    name: str
    identifier: str
    kind: str
    owner_type: str
    config_json: dict[str, Any]
    secret_config_keys: list[str]
    created_at: datetime
    updated_at: datetime


class ProviderCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/providers body; ``name`` defaults to ``identifier``."""

    identifier: Identifier
    kind: ProviderKind
    name: NonEmpty | None = None
    owner_type: NonEmpty | None = None
    config_json: dict[str, Any] = {}
    secret_config: dict[str, Any] = {}


class ProviderPatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH …/providers/{id} body (secret rules in docs/registry.md)."""

    identifier: Identifier | Unset = UNSET
    kind: ProviderKind | Unset = UNSET
    name: NonEmpty | Unset = UNSET
    owner_type: NonEmpty | Unset = UNSET
    config_json: dict[str, Any] | Unset = UNSET
    secret_config: dict[str, Any] | Unset = UNSET


DEFAULT_OWNER_TYPE = "customer"
PROVIDER_COLUMNS = (
    "id, zone_id, name, identifier, kind, owner_type, config_json, secret_config_keys,"
    " created_at, updated_at"
)


def to_provider(row: dict[str, Any]) -> Provider:
    """Row to response object."""
    fields = {name: row[name] for name in Provider.__struct_fields__}
    return Provider(**{**fields, "id": str(row["id"])})


def identifier_taken(identifier: str) -> ApiError:
    """409 provider_identifier_taken."""
    return ApiError(
        409, "provider_identifier_taken", f"an active provider has identifier {identifier!r}"
    )


def split_config(
    config: dict[str, Any], secret_config: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`split_secrets`, its ambiguity error answered as 400 invalid_body."""
    try:
        return split_secrets(config, secret_config)
    except ValueError as exc:
        raise invalid_body(str(exc), ["secret_config"]) from None


async def require_provider(
    conn: Conn, zone_id: str, provider_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The active provider row (``secrets_enc`` added), or 404 provider_not_found."""
    provider_uuid = parse_uuid(provider_id, "provider_not_found")
    cur = await conn.execute(
        f"SELECT {PROVIDER_COLUMNS}, secrets_enc FROM providers"
        " WHERE zone_id = %s AND id = %s AND archived_at IS NULL" + (" FOR UPDATE" if lock else ""),
        (zone_id, provider_uuid),
    )
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "provider_not_found")
    return row


class ProviderController(Controller):
    """List, create, read, update and archive providers."""

    path = "/v1/zones/{zone_id:str}/providers"
    tags = ["providers"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_providers(self, zone_id: str, services: Services) -> list[Provider]:
        """Active providers of the zone, oldest first."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                f"SELECT {PROVIDER_COLUMNS} FROM providers"
                " WHERE zone_id = %s AND archived_at IS NULL ORDER BY created_at, id",
                (zone_id,),
            )
            return [to_provider(row) for row in await cur.fetchall()]

    @post("/")
    async def create_provider(
        self, request: Request, zone_id: str, services: Services, data: ProviderCreate
    ) -> Provider:
        """Create a provider (201); secret fields are encrypted, only their paths listed."""
        plain, found = split_config(data.config_json, data.secret_config)
        secrets = {path: value for path, value in found.items() if value is not None}
        provider_id = uuid7()
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            dek = await load_dek(conn, services.kek, zone_id) if secrets else None
            sealed = seal_secrets(dek, provider_id, secrets) if dek else None
            row = await returning_unique(
                conn,
                "INSERT INTO providers (zone_id, id, name, identifier, kind, owner_type,"
                " config_json, secret_config_keys, secrets_enc)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {PROVIDER_COLUMNS}",
                (
                    zone_id,
                    provider_id,
                    data.name if data.name is not None else data.identifier,
                    data.identifier,
                    data.kind,
                    data.owner_type if data.owner_type is not None else DEFAULT_OWNER_TYPE,
                    Jsonb(plain),
                    sorted(secrets),
                    sealed,
                ),
                "providers_active_identifier",
                identifier_taken(data.identifier),
            )
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="provider.created",
                actor_id=actor_id(request),
                metadata={
                    "provider_id": str(provider_id),
                    "identifier": row["identifier"],
                    "name": row["name"],
                    "kind": row["kind"],
                    "owner_type": row["owner_type"],
                    "config_json": plain,
                    "encrypted_fields": sorted(secrets),
                },
            )
        return to_provider(row)

    @get("/{provider_id:str}")
    async def get_provider(self, zone_id: str, provider_id: str, services: Services) -> Provider:
        """One active provider."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            return to_provider(await require_provider(conn, zone_id, provider_id))

    @patch("/{provider_id:str}")
    async def update_provider(
        self,
        request: Request,
        zone_id: str,
        provider_id: str,
        services: Services,
        data: ProviderPatch,
    ) -> Provider:
        """Partial update; mentioned secrets are replaced (``null`` removes), others kept."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
        if not changes:
            raise ApiError(400, "no_fields", "the body contains no updatable fields")
        config = changes.pop("config_json", None)
        secret_config = changes.pop("secret_config", None)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            current = await require_provider(conn, zone_id, provider_id, lock=True)
            columns = dict(changes)
            audit: dict[str, Any] = {"provider_id": str(current["id"]), "changes": dict(changes)}
            if config is not None or secret_config is not None:
                plain, mentioned = split_config(
                    config if config is not None else current["config_json"], secret_config
                )
                columns["config_json"] = Jsonb(plain)
                audit["changes"]["config_json"] = plain
                if mentioned:
                    dek = await load_dek(conn, services.kek, zone_id)
                    secrets = open_secrets(dek, current["id"], current["secrets_enc"])
                    for path, value in mentioned.items():
                        if value is None:
                            secrets.pop(path, None)
                        else:
                            secrets[path] = value
                    columns["secrets_enc"] = seal_secrets(dek, current["id"], secrets)
                    columns["secret_config_keys"] = sorted(secrets)
                    audit["encrypted_fields"] = {
                        "set": sorted(p for p, v in mentioned.items() if v is not None),
                        "removed": sorted(p for p, v in mentioned.items() if v is None),
                    }
            assignments = ", ".join(f"{column} = %s" for column in columns)
            row = await returning_unique(
                conn,
                f"UPDATE providers SET {assignments} WHERE zone_id = %s AND id = %s"
                f" RETURNING {PROVIDER_COLUMNS}",
                (*columns.values(), zone_id, current["id"]),
                "providers_active_identifier",
                identifier_taken(changes.get("identifier", current["identifier"])),
            )
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="provider.updated",
                actor_id=actor_id(request),
                metadata=audit,
            )
        return to_provider(row)

    @delete("/{provider_id:str}", status_code=204)
    async def archive_provider(
        self, request: Request, zone_id: str, provider_id: str, services: Services
    ) -> None:
        """Archive; refused (409) while an active resource uses the provider."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            current = await require_provider(conn, zone_id, provider_id, lock=True)
            await self._refuse_if_in_use(conn, zone_id, current["id"])
            await conn.execute(
                "UPDATE providers SET archived_at = now() WHERE zone_id = %s AND id = %s",
                (zone_id, current["id"]),
            )
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="provider.archived",
                actor_id=actor_id(request),
                metadata={"provider_id": str(current["id"])},
            )

    @staticmethod
    async def _refuse_if_in_use(conn: Conn, zone_id: str, provider_uuid: UUID) -> None:
        cur = await conn.execute(
            "SELECT id FROM resources WHERE zone_id = %s AND credential_provider_id = %s"
            " AND archived_at IS NULL ORDER BY created_at, id",
            (zone_id, provider_uuid),
        )
        users = [str(row["id"]) for row in await cur.fetchall()]
        if users:
            raise ApiError(
                409,
                "provider_referenced_by_resource",
                f"active resources use this provider: {', '.join(users[:10])}"
                + (f" and {len(users) - 10} more" if len(users) > 10 else ""),
            )
