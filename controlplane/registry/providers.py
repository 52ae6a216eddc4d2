"""Credential providers of a zone, their secrets encrypted under the zone DEK.

``config_json`` and ``secret_config`` are merged and every secret field (at any depth, see
`controlplane.secret_fields`) is taken out, encrypted (`controlplane.provider_secrets`) and
listed by dotted path in ``secret_config_keys``; secret values are never returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import require_active, returning_unique
from controlplane.errors import Conflict, Invalid
from controlplane.fields import AT_LEAST_ONE_FIELD, Identifier, NonEmpty
from controlplane.keys.crypto import Kek
from controlplane.keys.provider_secrets import open_secrets, seal_secrets
from controlplane.keys.secret_fields import split_secrets
from controlplane.keys.zone_keys import load_dek
from controlplane.registry.zones import require_zone

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

    example: ClassVar[dict[str, Any]] = {
        "identifier": "github",
        "kind": "oauth2",
        "config_json": {"token_url": "https://github.com/login/oauth/access_token"},
        "secret_config": {"client_secret": "s3cr3t"},
    }


class ProviderPatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH …/providers/{id} body (secret rules in docs/registry.md)."""

    identifier: Identifier | Unset = UNSET
    kind: ProviderKind | Unset = UNSET
    name: NonEmpty | Unset = UNSET
    owner_type: NonEmpty | Unset = UNSET
    config_json: dict[str, Any] | Unset = UNSET
    secret_config: dict[str, Any] | Unset = UNSET

    example: ClassVar[dict[str, Any]] = {"name": "GitHub"}
    json_schema_extra: ClassVar[dict[str, Any]] = AT_LEAST_ONE_FIELD


DEFAULT_OWNER_TYPE = "customer"
PROVIDER_COLUMNS = (
    "id, zone_id, name, identifier, kind, owner_type, config_json, secret_config_keys,"
    " created_at, updated_at"
)


def to_provider(row: dict[str, Any]) -> Provider:
    """Row to response object."""
    fields = {name: row[name] for name in Provider.__struct_fields__}
    return Provider(**{**fields, "id": str(row["id"])})


def identifier_taken(identifier: str) -> Conflict:
    """Conflict provider_identifier_taken."""
    return Conflict(
        "provider_identifier_taken", f"an active provider has identifier {identifier!r}"
    )


def split_config(
    config: dict[str, Any], secret_config: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`split_secrets`, its ambiguity error raised as Invalid invalid_body."""
    try:
        return split_secrets(config, secret_config)
    except ValueError as exc:
        raise Invalid.body(str(exc), ["secret_config"]) from None


async def require_provider(
    conn: Conn, zone_id: str, provider_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The active provider row (``secrets_enc`` added), or NotFound provider_not_found."""
    return await require_active(
        conn,
        "providers",
        f"{PROVIDER_COLUMNS}, secrets_enc",
        zone_id,
        provider_id,
        "provider_not_found",
        lock=lock,
    )


async def list_providers(conn: Conn, zone_id: str) -> list[Provider]:
    """Active providers of the zone, oldest first."""
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        f"SELECT {PROVIDER_COLUMNS} FROM providers"
        " WHERE zone_id = %s AND archived_at IS NULL ORDER BY created_at, id",
        (zone_id,),
    )
    return [to_provider(row) for row in await cur.fetchall()]


async def create_provider(
    conn: Conn,
    kek: Kek,
    zone_id: str,
    body: ProviderCreate,
    config: tuple[dict[str, Any], dict[str, Any]],
    *,
    actor: str | None,
) -> Provider:
    """Create a provider with ``config`` = ``split_config(body.config_json,
    body.secret_config)`` (split by the caller, before the transaction): secret fields
    encrypted, only their paths listed; record ``provider.created``."""
    plain, found = config
    secrets = {path: value for path, value in found.items() if value is not None}
    provider_id = uuid7()
    await require_zone(conn, zone_id)
    dek = await load_dek(conn, kek, zone_id) if secrets else None
    sealed = seal_secrets(dek, provider_id, secrets) if dek else None
    row = await returning_unique(
        conn,
        "INSERT INTO providers (zone_id, id, name, identifier, kind, owner_type,"
        " config_json, secret_config_keys, secrets_enc)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {PROVIDER_COLUMNS}",
        (
            zone_id,
            provider_id,
            body.name if body.name is not None else body.identifier,
            body.identifier,
            body.kind,
            body.owner_type if body.owner_type is not None else DEFAULT_OWNER_TYPE,
            Jsonb(plain),
            sorted(secrets),
            sealed,
        ),
        "providers_active_identifier",
        identifier_taken(body.identifier),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="provider.created",
        actor_id=actor,
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


async def get_provider(conn: Conn, zone_id: str, provider_id: str) -> Provider:
    """One active provider."""
    await require_zone(conn, zone_id)
    return to_provider(await require_provider(conn, zone_id, provider_id))


async def update_provider(
    conn: Conn,
    kek: Kek,
    zone_id: str,
    provider_id: str,
    changes: dict[str, Any],
    *,
    actor: str | None,
) -> Provider:
    """Apply ``changes``: mentioned secrets are replaced (``null`` removes), others kept;
    record ``provider.updated``."""
    config = changes.pop("config_json", None)
    secret_config = changes.pop("secret_config", None)
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
            dek = await load_dek(conn, kek, zone_id)
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
        actor_id=actor,
        metadata=audit,
    )
    return to_provider(row)


async def archive_provider(
    conn: Conn, zone_id: str, provider_id: str, *, actor: str | None
) -> None:
    """Archive; Conflict while an active resource uses the provider."""
    await require_zone(conn, zone_id)
    current = await require_provider(conn, zone_id, provider_id, lock=True)
    await _refuse_if_in_use(conn, zone_id, current["id"])
    await conn.execute(
        "UPDATE providers SET archived_at = now() WHERE zone_id = %s AND id = %s",
        (zone_id, current["id"]),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="provider.archived",
        actor_id=actor,
        metadata={"provider_id": str(current["id"])},
    )


async def _refuse_if_in_use(conn: Conn, zone_id: str, provider_uuid: UUID) -> None:
    cur = await conn.execute(
        "SELECT id FROM resources WHERE zone_id = %s AND credential_provider_id = %s"
        " AND archived_at IS NULL ORDER BY created_at, id",
        (zone_id, provider_uuid),
    )
    users = [str(row["id"]) for row in await cur.fetchall()]
    if users:
        raise Conflict(
            "provider_referenced_by_resource",
            f"active resources use this provider: {', '.join(users[:10])}"
            + (f" and {len(users) - 10} more" if len(users) > 10 else ""),
        )
