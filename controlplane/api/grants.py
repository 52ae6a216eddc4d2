"""Grants: ``/v1/zones/{zoneId}/grants``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.api.pagination import (
    CursorParam,
    LimitParam,
    UuidQuery,
    decode_cursor,
    next_page,
)
from controlplane.decisions import grants
from controlplane.decisions.grants import Grant, GrantCreate, GrantStatus, to_grant
from controlplane.http.errors import invalid_query
from controlplane.services import Services

CURSOR_KIND = "grants"


class GrantPage(msgspec.Struct):
    """One page of grants."""

    rows: list[Grant]
    next_cursor: str | None


def _query_uuid(value: str | None, name: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise invalid_query("Expected a UUID", [name]) from None


class GrantController(Controller):
    """Create, list, read and revoke grants."""

    path = "/v1/zones/{zone_id:str}/grants"
    tags = ["grants"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @post(
        "/",
        opt={
            "errors": {
                403: "grant_scopes_exceed_resource",
                404: ("application_not_found", "resource_not_found"),
            }
        },
    )
    async def create_grant(
        self, request: Request, zone_id: str, services: Services, data: GrantCreate
    ) -> Grant:
        """Create a grant (201, ``status: "active"``)."""
        async with services.db.transaction() as conn:
            return await grants.create_grant(conn, zone_id, data, actor=actor_id(request))

    @get("/", opt={"errors": {400: "invalid_cursor"}})
    async def list_grants(
        self,
        zone_id: str,
        services: Services,
        application_id: UuidQuery = None,
        user_id: str | None = None,
        resource_id: UuidQuery = None,
        status: GrantStatus | None = None,
        limit: LimitParam = 100,
        cursor: CursorParam = None,
    ) -> GrantPage:
        """Grants newest first (``created_at DESC, id DESC``), filtered."""
        app_uuid = _query_uuid(application_id, "application_id")
        resource_uuid = _query_uuid(resource_id, "resource_id")
        before = None
        if cursor is not None:
            position = decode_cursor(services.kek, CURSOR_KIND, zone_id, cursor, uuid_id=True)
            before = (position.at, UUID(position.id))
        async with services.db.transaction() as conn:
            rows: list[dict[str, Any]] = await grants.list_grants(
                conn,
                zone_id,
                application_id=app_uuid,
                user_id=user_id,
                resource_id=resource_uuid,
                status=status,
                before=before,
                limit=limit + 1,
            )
        page, next_cursor = next_page(services.kek, CURSOR_KIND, zone_id, rows, limit, "created_at")
        return GrantPage(rows=[to_grant(row) for row in page], next_cursor=next_cursor)

    @get("/{grant_id:str}", opt={"errors": {404: "grant_not_found"}})
    async def get_grant(self, zone_id: str, grant_id: str, services: Services) -> Grant:
        """One grant; 404 grant_not_found."""
        async with services.db.transaction() as conn:
            return await grants.get_grant(conn, zone_id, grant_id)

    @delete("/{grant_id:str}", status_code=204, opt={"errors": {404: "grant_not_found"}})
    async def revoke_grant(
        self, request: Request, zone_id: str, grant_id: str, services: Services
    ) -> None:
        """Revoke: the grant, the user's active sessions, one outbox message per session."""
        async with services.db.transaction() as conn:
            await grants.revoke_grant(conn, zone_id, grant_id, actor=actor_id(request))
