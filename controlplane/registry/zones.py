"""Zones: the tenancy unit every other object lives in; created with their keys, archived
(soft-deleted), never removed."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from psycopg import errors as pg_errors

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row
from controlplane.errors import Invalid, NotFound
from controlplane.fields import AT_LEAST_ONE_FIELD, NonEmpty, whole_string
from controlplane.keys.crypto import Kek
from controlplane.keys.zone_keys import provision_zone_keys

#: Longest zone slug (derived slugs are cut to it).
MAX_SLUG_LENGTH = 200
Slug = Annotated[str, msgspec.Meta(pattern=whole_string("[a-z0-9-]+"), max_length=MAX_SLUG_LENGTH)]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class Zone(msgspec.Struct):
    """Zone object."""

    id: str
    org_id: str
    name: str
    slug: str
    dcr_enabled: bool
    pkce_required: bool
    login_flow: str
    created_at: datetime
    updated_at: datetime


class ZoneCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/zones body."""

    name: NonEmpty
    org_id: NonEmpty = "default"
    slug: Slug | Unset = UNSET  # absent: derived from name (null is refused like elsewhere)
    dcr_enabled: bool = False
    pkce_required: bool = True
    login_flow: str = "default"

    example: ClassVar[dict[str, Any]] = {"name": "Payments", "slug": "payments"}
    # No slug can be derived from a name without a letter or digit: give one then.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["slug"]}, {"properties": {"name": {"pattern": "[A-Za-z0-9]"}}}]
    }


class ZonePatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH /v1/zones/{zoneId} body: every field optional, at least one."""

    name: NonEmpty | Unset = UNSET
    org_id: NonEmpty | Unset = UNSET
    slug: Slug | Unset = UNSET
    dcr_enabled: bool | Unset = UNSET
    pkce_required: bool | Unset = UNSET
    login_flow: str | Unset = UNSET

    example: ClassVar[dict[str, Any]] = {"dcr_enabled": True}
    json_schema_extra: ClassVar[dict[str, Any]] = AT_LEAST_ONE_FIELD


ZONE_COLUMNS = (
    "id, org_id, name, slug, dcr_enabled, pkce_required, login_flow, created_at, updated_at"
)
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def derive_slug(name: str) -> str:
    """Lower-case, runs of non-alphanumerics to one ``-``, trimmed of ``-``, at most
    ``MAX_SLUG_LENGTH`` characters."""
    return _NON_SLUG.sub("-", name.lower()).strip("-")[:MAX_SLUG_LENGTH].rstrip("-")


def slug_taken(slug: str) -> Invalid:
    """Invalid invalid_zone for a slug another active zone has."""
    return Invalid("invalid_zone", f"slug {slug!r} is already taken")


def to_zone(row: dict[str, Any]) -> Zone:
    """Row to response object."""
    return Zone(**{name: row[name] for name in Zone.__struct_fields__})


async def require_zone(conn: Conn, zone_id: str, *, lock: bool = False) -> dict[str, Any]:
    """The active zone row, or NotFound zone_not_found.

    ``lock`` takes the zone row ``FOR NO KEY UPDATE`` until the transaction ends: zone
    updates and archiving, policy-set activation and an application's downgrade to
    ``public`` serialise on it (rows referencing the zone can still be inserted meanwhile).
    """
    if "\x00" in zone_id:  # no stored id has one, and PostgreSQL refuses it in a query
        raise NotFound("zone_not_found")
    cur = await conn.execute(
        "SELECT * FROM zones WHERE id = %s AND archived_at IS NULL"
        + (" FOR NO KEY UPDATE" if lock else ""),
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("zone_not_found")
    return row


async def list_zones(conn: Conn) -> list[Zone]:
    """Active zones, oldest first."""
    cur = await conn.execute(
        f"SELECT {ZONE_COLUMNS} FROM zones WHERE archived_at IS NULL ORDER BY created_at, id"
    )
    return [to_zone(row) for row in await cur.fetchall()]


async def insert_zone(
    conn: Conn, kek: Kek, zone_id: str, body: ZoneCreate, *, local_bootstrap: bool = False
) -> Zone:
    """Create a zone with its DEK and signing key (no audit event); Invalid invalid_zone
    when the slug is taken."""
    slug = body.slug if body.slug is not UNSET else derive_slug(body.name)
    if not slug:
        raise Invalid("invalid_zone", "no slug can be derived from name; give a slug")
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO zones (id, org_id, name, slug, dcr_enabled, pkce_required,"
                " login_flow, local_bootstrap) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {ZONE_COLUMNS}",
                (
                    zone_id,
                    body.org_id,
                    body.name,
                    slug,
                    body.dcr_enabled,
                    body.pkce_required,
                    body.login_flow,
                    local_bootstrap,
                ),
            )
            row = await one_row(cur)
    except pg_errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "zones_active_slug":
            raise slug_taken(slug) from None
        raise
    await provision_zone_keys(conn, kek, zone_id)
    return to_zone(row)


async def create_zone(
    conn: Conn, kek: Kek, zone_id: str, body: ZoneCreate, *, actor: str | None
) -> Zone:
    """Create a zone and record ``zone.created``."""
    zone = await insert_zone(conn, kek, zone_id, body)
    await record_event(
        conn,
        zone_id=zone.id,
        event_type="zone.created",
        actor_id=actor,
        # what the zone was created with, defaults and the derived slug included
        metadata={"fields": {**msgspec.to_builtins(body), "slug": zone.slug}},
    )
    return zone


async def get_zone(conn: Conn, zone_id: str) -> Zone:
    """One active zone."""
    return to_zone(await require_zone(conn, zone_id))


async def update_zone(
    conn: Conn, zone_id: str, changes: dict[str, Any], *, actor: str | None
) -> Zone:
    """Apply ``changes`` (``controlplane.fields.changes_of``) and record ``zone.updated``."""
    await require_zone(conn, zone_id, lock=True)
    assignments = ", ".join(f"{column} = %s" for column in changes)
    try:
        async with conn.transaction():
            cur = await conn.execute(
                f"UPDATE zones SET {assignments} WHERE id = %s RETURNING {ZONE_COLUMNS}",
                (*changes.values(), zone_id),
            )
            row = await one_row(cur)
    except pg_errors.UniqueViolation:
        raise slug_taken(str(changes.get("slug"))) from None
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="zone.updated",
        actor_id=actor,
        metadata={"changes": changes},
    )
    return to_zone(row)


async def archive_zone(conn: Conn, zone_id: str, *, actor: str | None) -> None:
    """Archive (soft delete) and record ``zone.archived``; the caller drops the zone's PDP
    state after the commit."""
    await require_zone(conn, zone_id, lock=True)
    await conn.execute("UPDATE zones SET archived_at = now() WHERE id = %s", (zone_id,))
    await record_event(conn, zone_id=zone_id, event_type="zone.archived", actor_id=actor)
