"""Resources of a zone: what applications are granted scopes on.

``identifier`` is unique among the zone's active resources; with ``prefix: true`` it matches
every requested identifier that starts with it (docs/registry.md). ``credential_provider_id``
must name an active provider of the same zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import require_active, returning_unique
from controlplane.errors import Conflict, Invalid, NotFound
from controlplane.fields import AT_LEAST_ONE_FIELD, Identifier, NonEmpty, whole_string
from controlplane.registry.zones import require_zone

Scopes = Annotated[list[NonEmpty], msgspec.Meta(min_length=1)]
#: ``check_upstream_url`` accepts these (and a few more): the pattern documents the rule.
UpstreamUrl = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "pattern": whole_string(
                "[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(:[0-9]{1,4})?([/?#][!-~]*)?"
            )
        }
    ),
]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class Resource(msgspec.Struct):
    """Resource object."""

    id: str
    zone_id: str
    name: str
    identifier: str
    upstream_url: str | None
    prefix: bool
    scopes: list[str]
    credential_provider_id: str | None
    created_at: datetime
    updated_at: datetime


class ResourceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/resources body; ``name`` defaults to ``identifier``."""

    identifier: Identifier
    scopes: Scopes
    name: NonEmpty | None = None
    upstream_url: UpstreamUrl | None = None
    prefix: bool = False
    credential_provider_id: UUID | None = None

    example: ClassVar[dict[str, Any]] = {
        "identifier": "https://api.example.com/orders",
        "scopes": ["orders:read", "orders:write"],
        "upstream_url": "https://orders.internal.example.com",
    }


class ResourcePatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH …/resources/{id} body; ``null`` clears ``upstream_url``/``credential_provider_id``."""

    identifier: Identifier | Unset = UNSET
    scopes: Scopes | Unset = UNSET
    name: NonEmpty | Unset = UNSET
    upstream_url: UpstreamUrl | Unset | None = UNSET
    prefix: bool | Unset = UNSET
    credential_provider_id: UUID | Unset | None = UNSET

    example: ClassVar[dict[str, Any]] = {"scopes": ["orders:read"]}
    json_schema_extra: ClassVar[dict[str, Any]] = AT_LEAST_ONE_FIELD


RESOURCE_COLUMNS = (
    "id, zone_id, name, identifier, upstream_url, prefix, scopes, credential_provider_id,"
    " created_at, updated_at"
)


def to_resource(row: dict[str, Any]) -> Resource:
    """Row to response object."""
    provider = row["credential_provider_id"]
    return Resource(
        id=str(row["id"]),
        zone_id=row["zone_id"],
        name=row["name"],
        identifier=row["identifier"],
        upstream_url=row["upstream_url"],
        prefix=row["prefix"],
        scopes=list(row["scopes"]),
        credential_provider_id=None if provider is None else str(provider),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host, a valid port and no whitespace."""
    if any(char.isspace() for char in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError when the port is not a number in range
    except ValueError:
        return False
    return parts.scheme.lower() in {"http", "https"} and bool(parts.hostname)


def check_upstream_url(url: str | None) -> None:
    """Invalid invalid_body unless ``url`` is None or an http(s) URL with a host."""
    if url is not None and not is_http_url(url):
        raise Invalid.body("must be an http:// or https:// URL with a host", ["upstream_url"])


def identifier_taken(identifier: str) -> Conflict:
    """Conflict resource_identifier_taken."""
    return Conflict(
        "resource_identifier_taken", f"an active resource has identifier {identifier!r}"
    )


async def require_active_provider(conn: Conn, zone_id: str, provider_id: UUID | None) -> None:
    """NotFound provider_not_found unless the provider is active in the zone (share-locked until
    commit, so it cannot be archived while this resource starts using it)."""
    if provider_id is None:
        return
    cur = await conn.execute(
        "SELECT 1 FROM providers WHERE zone_id = %s AND id = %s AND archived_at IS NULL FOR SHARE",
        (zone_id, provider_id),
    )
    if await cur.fetchone() is None:
        raise NotFound("provider_not_found", f"no active provider {provider_id} in the zone")


async def require_resource(
    conn: Conn, zone_id: str, resource_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The active resource row, or NotFound resource_not_found."""
    return await require_active(
        conn, "resources", RESOURCE_COLUMNS, zone_id, resource_id, "resource_not_found", lock=lock
    )


def _audit_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = msgspec.to_builtins(to_resource(row))
    return {"resource_id": fields.pop("id")} | {
        k: v for k, v in fields.items() if k not in {"zone_id", "created_at", "updated_at"}
    }


async def insert_resource(
    conn: Conn,
    zone_id: str,
    *,
    identifier: str,
    scopes: list[str],
    name: str | None = None,
    upstream_url: str | None = None,
    prefix: bool = False,
    credential_provider_id: UUID | None = None,
) -> dict[str, Any]:
    """Insert a resource (``name`` defaults to ``identifier``); Conflict when the identifier is
    taken."""
    return await returning_unique(
        conn,
        "INSERT INTO resources (zone_id, id, name, identifier, upstream_url, prefix,"
        " scopes, credential_provider_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {RESOURCE_COLUMNS}",
        (
            zone_id,
            uuid7(),
            name if name is not None else identifier,
            identifier,
            upstream_url,
            prefix,
            scopes,
            credential_provider_id,
        ),
        "resources_active_identifier",
        identifier_taken(identifier),
    )


async def list_resources(conn: Conn, zone_id: str) -> list[Resource]:
    """Active resources of the zone, oldest first."""
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        f"SELECT {RESOURCE_COLUMNS} FROM resources"
        " WHERE zone_id = %s AND archived_at IS NULL ORDER BY created_at, id",
        (zone_id,),
    )
    return [to_resource(row) for row in await cur.fetchall()]


async def create_resource(
    conn: Conn, zone_id: str, body: ResourceCreate, *, actor: str | None
) -> Resource:
    """Create a resource and record ``resource.created``; the caller has run
    ``check_upstream_url``."""
    await require_zone(conn, zone_id)
    await require_active_provider(conn, zone_id, body.credential_provider_id)
    row = await insert_resource(
        conn,
        zone_id,
        identifier=body.identifier,
        scopes=body.scopes,
        name=body.name,
        upstream_url=body.upstream_url,
        prefix=body.prefix,
        credential_provider_id=body.credential_provider_id,
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="resource.created",
        actor_id=actor,
        metadata=_audit_fields(row),
    )
    return to_resource(row)


async def get_resource(conn: Conn, zone_id: str, resource_id: str) -> Resource:
    """One active resource."""
    await require_zone(conn, zone_id)
    return to_resource(await require_resource(conn, zone_id, resource_id))


async def update_resource(
    conn: Conn, zone_id: str, resource_id: str, changes: dict[str, Any], *, actor: str | None
) -> Resource:
    """Apply ``changes`` (``upstream_url`` checked by the caller) and record
    ``resource.updated``."""
    await require_zone(conn, zone_id)
    current = await require_resource(conn, zone_id, resource_id, lock=True)
    await require_active_provider(conn, zone_id, changes.get("credential_provider_id"))
    assignments = ", ".join(f"{column} = %s" for column in changes)
    row = await returning_unique(
        conn,
        f"UPDATE resources SET {assignments} WHERE zone_id = %s AND id = %s"
        f" RETURNING {RESOURCE_COLUMNS}",
        (*changes.values(), zone_id, current["id"]),
        "resources_active_identifier",
        identifier_taken(changes.get("identifier", current["identifier"])),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="resource.updated",
        actor_id=actor,
        metadata={"resource_id": str(row["id"]), "changes": msgspec.to_builtins(changes)},
    )
    return to_resource(row)


async def archive_resource(
    conn: Conn, zone_id: str, resource_id: str, *, actor: str | None
) -> None:
    """Archive (soft delete); the identifier becomes free again."""
    await require_zone(conn, zone_id)
    current = await require_resource(conn, zone_id, resource_id, lock=True)
    await conn.execute(
        "UPDATE resources SET archived_at = now() WHERE zone_id = %s AND id = %s",
        (zone_id, current["id"]),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="resource.archived",
        actor_id=actor,
        metadata={"resource_id": str(current["id"])},
    )
