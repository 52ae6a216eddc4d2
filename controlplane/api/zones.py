"""Zones: ``/v1/zones``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from psycopg import errors as pg_errors
from uuid6 import uuid7

from controlplane.api.common import actor_id, require_zone, services_of
from controlplane.api.fields import NonEmpty, whole_string
from controlplane.audit.events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row
from controlplane.http.errors import ApiError
from controlplane.keys.zone_keys import provision_zone_keys
from controlplane.pdp.runtime import runtime_of
from controlplane.services import Services

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


class ZonePatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH /v1/zones/{zoneId} body: every field optional, at least one."""

    name: NonEmpty | Unset = UNSET
    org_id: NonEmpty | Unset = UNSET
    slug: Slug | Unset = UNSET
    dcr_enabled: bool | Unset = UNSET
    pkce_required: bool | Unset = UNSET
    login_flow: str | Unset = UNSET


ZONE_COLUMNS = (
    "id, org_id, name, slug, dcr_enabled, pkce_required, login_flow, created_at, updated_at"
)
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def derive_slug(name: str) -> str:
    """Lower-case, runs of non-alphanumerics to one ``-``, trimmed of ``-``, at most
    ``MAX_SLUG_LENGTH`` characters."""
    return _NON_SLUG.sub("-", name.lower()).strip("-")[:MAX_SLUG_LENGTH].rstrip("-")


def slug_taken(slug: str) -> ApiError:
    """400 invalid_zone for a slug another active zone has."""
    return ApiError(400, "invalid_zone", f"slug {slug!r} is already taken")


def to_zone(row: dict[str, Any]) -> Zone:
    """Row to response object."""
    return Zone(**{name: row[name] for name in Zone.__struct_fields__})


async def insert_zone(
    conn: Conn, services: Services, zone_id: str, body: ZoneCreate, *, local_bootstrap: bool = False
) -> Zone:
    """Create a zone with its DEK and signing key; 400 invalid_zone when the slug is taken."""
    slug = body.slug if body.slug is not UNSET else derive_slug(body.name)
    if not slug:
        raise ApiError(400, "invalid_zone", "no slug can be derived from name; give a slug")
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
    await provision_zone_keys(conn, services.kek, zone_id)
    return to_zone(row)


class ZoneController(Controller):
    """The five zone routes."""

    path = "/v1/zones"
    tags = ["zones"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/", opt={"scope": "global"})
    async def list_zones(self, services: Services) -> list[Zone]:
        """List active zones."""
        async with services.db.transaction() as conn:
            cur = await conn.execute(
                f"SELECT {ZONE_COLUMNS} FROM zones WHERE archived_at IS NULL"
                " ORDER BY created_at, id"
            )
            return [to_zone(row) for row in await cur.fetchall()]

    @post("/", opt={"scope": "global"})
    async def create_zone(self, request: Request, services: Services, data: ZoneCreate) -> Zone:
        """Create a zone (201)."""
        async with services.db.transaction() as conn:
            zone = await insert_zone(conn, services, str(uuid7()), data)
            await record_event(
                conn,
                zone_id=zone.id,
                event_type="zone.created",
                actor_id=actor_id(request),
                # what the zone was created with, defaults and the derived slug included
                metadata={"fields": {**msgspec.to_builtins(data), "slug": zone.slug}},
            )
        return zone

    @get("/{zone_id:str}")
    async def get_zone(self, zone_id: str, services: Services) -> Zone:
        """One zone."""
        async with services.db.transaction() as conn:
            return to_zone(await require_zone(conn, zone_id))

    @patch("/{zone_id:str}")
    async def update_zone(
        self, request: Request, zone_id: str, services: Services, data: ZonePatch
    ) -> Zone:
        """Partial update; at least one field."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
        if not changes:
            raise ApiError(400, "no_fields", "the body contains no updatable fields")
        async with services.db.transaction() as conn:
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
                actor_id=actor_id(request),
                metadata={"changes": changes},
            )
        return to_zone(row)

    @delete("/{zone_id:str}", status_code=204)
    async def archive_zone(self, request: Request, zone_id: str, services: Services) -> None:
        """Archive (soft delete)."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id, lock=True)
            await conn.execute("UPDATE zones SET archived_at = now() WHERE id = %s", (zone_id,))
            await record_event(
                conn, zone_id=zone_id, event_type="zone.archived", actor_id=actor_id(request)
            )
        runtime_of(services).forget(zone_id)  # other processes: the caracal_zones NOTIFY
