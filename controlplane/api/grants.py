"""Grants: ``/v1/zones/{zoneId}/grants``.

Revoking a grant revokes, in the same transaction, every active session of the grant's user
in the zone and enqueues one ``caracal.session.revoke`` outbox message per session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import Provide
from uuid6 import uuid7

from controlplane.api.common import actor_id, parse_uuid, require_zone, services_of
from controlplane.api.fields import whole_string
from controlplane.api.pagination import (
    CursorParam,
    LimitParam,
    decode_cursor,
    next_page,
)
from controlplane.audit.events import record_event
from controlplane.db.pool import Conn
from controlplane.decisions.sessions import MAX_ID_LENGTH, revoke_subject_sessions
from controlplane.http.errors import ApiError, invalid_query
from controlplane.outbox.enqueue import TOPIC_SESSION_REVOKE, enqueue
from controlplane.services import Services

GrantScope = Annotated[str, msgspec.Meta(pattern=whole_string("[a-z0-9:_./-]+"), max_length=200)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
GrantStatus = Literal["active", "revoked"]

CURSOR_KIND = "grants"
GRANT_COLUMNS = (
    "id, zone_id, application_id, user_id, resource_id, scopes,"
    " CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END AS status,"
    " created_at, revoked_at"
)


class Grant(msgspec.Struct):
    """Grant object."""

    id: str
    zone_id: str
    application_id: str
    user_id: str
    resource_id: str
    scopes: list[str]
    status: str
    created_at: datetime
    revoked_at: datetime | None


class GrantPage(msgspec.Struct):
    """One page of grants."""

    rows: list[Grant]
    next_cursor: str | None


class GrantCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/grants body."""

    application_id: UUID
    user_id: UserId
    resource_id: UUID
    scopes: Annotated[list[GrantScope], msgspec.Meta(min_length=1, max_length=64)]


def to_grant(row: dict[str, Any]) -> Grant:
    """Row to response object."""
    return Grant(
        **{
            **row,
            "id": str(row["id"]),
            "application_id": str(row["application_id"]),
            "resource_id": str(row["resource_id"]),
        }
    )


def _query_uuid(value: str | None, name: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise invalid_query("Expected a UUID", [name]) from None


async def _resource_scopes(conn: Conn, zone_id: str, body: GrantCreate) -> list[str]:
    """Check the application and resource are active (locked against archiving meanwhile)."""
    cur = await conn.execute(
        "SELECT 1 FROM applications WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now()) FOR SHARE",
        (zone_id, body.application_id),
    )
    if await cur.fetchone() is None:
        raise ApiError(404, "application_not_found")
    cur = await conn.execute(
        "SELECT scopes FROM resources WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        " FOR SHARE",
        (zone_id, body.resource_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "resource_not_found")
    return list(row["scopes"])


class GrantController(Controller):
    """Create, list, read and revoke grants."""

    path = "/v1/zones/{zone_id:str}/grants"
    tags = ["grants"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @post("/")
    async def create_grant(
        self, request: Request, zone_id: str, services: Services, data: GrantCreate
    ) -> Grant:
        """Create a grant (201, ``status: "active"``)."""
        scopes = list(dict.fromkeys(data.scopes))
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            allowed = await _resource_scopes(conn, zone_id, data)
            extra = [scope for scope in scopes if scope not in allowed]
            if extra:
                raise ApiError(
                    403,
                    "grant_scopes_exceed_resource",
                    f"scopes not declared by the resource: {', '.join(extra)}",
                )
            grant_id = uuid7()
            cur = await conn.execute(
                "INSERT INTO grants (zone_id, id, application_id, user_id, resource_id, scopes)"
                f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {GRANT_COLUMNS}",
                (zone_id, grant_id, data.application_id, data.user_id, data.resource_id, scopes),
            )
            row = await cur.fetchone()
            assert row is not None
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="grant.created",
                actor_id=actor_id(request),
                metadata={
                    "grant_id": str(grant_id),
                    "application_id": str(data.application_id),
                    "user_id": data.user_id,
                    "resource_id": str(data.resource_id),
                    "scopes": scopes,
                },
            )
        return to_grant(row)

    @get("/")
    async def list_grants(
        self,
        zone_id: str,
        services: Services,
        application_id: str | None = None,
        user_id: str | None = None,
        resource_id: str | None = None,
        status: GrantStatus | None = None,
        limit: LimitParam = 100,
        cursor: CursorParam = None,
    ) -> GrantPage:
        """Grants newest first (``created_at DESC, id DESC``), filtered."""
        conditions = ["zone_id = %s"]
        params: list[Any] = [zone_id]
        for column, value in (
            ("application_id", _query_uuid(application_id, "application_id")),
            ("user_id", user_id),
            ("resource_id", _query_uuid(resource_id, "resource_id")),
        ):
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        if status is not None:
            conditions.append(
                "revoked_at IS NULL" if status == "active" else "revoked_at IS NOT NULL"
            )
        if cursor is not None:
            position = decode_cursor(services.kek, CURSOR_KIND, zone_id, cursor, uuid_id=True)
            conditions.append("(created_at, id) < (%s, %s)")
            params += [position.at, UUID(position.id)]
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                f"SELECT {GRANT_COLUMNS} FROM grants WHERE {' AND '.join(conditions)}"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (*params, limit + 1),
            )
            rows = await cur.fetchall()
        page, next_cursor = next_page(services.kek, CURSOR_KIND, zone_id, rows, limit, "created_at")
        return GrantPage(rows=[to_grant(row) for row in page], next_cursor=next_cursor)

    @get("/{grant_id:str}")
    async def get_grant(self, zone_id: str, grant_id: str, services: Services) -> Grant:
        """One grant; 404 grant_not_found."""
        grant_uuid = parse_uuid(grant_id, "grant_not_found")
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                f"SELECT {GRANT_COLUMNS} FROM grants WHERE zone_id = %s AND id = %s",
                (zone_id, grant_uuid),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "grant_not_found")
        return to_grant(row)

    @delete("/{grant_id:str}", status_code=204)
    async def revoke_grant(
        self, request: Request, zone_id: str, grant_id: str, services: Services
    ) -> None:
        """Revoke: the grant, the user's active sessions, one outbox message per session."""
        grant_uuid = parse_uuid(grant_id, "grant_not_found")
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                "SELECT user_id, revoked_at FROM grants WHERE zone_id = %s AND id = %s FOR UPDATE",
                (zone_id, grant_uuid),
            )
            grant = await cur.fetchone()
            if grant is None:
                raise ApiError(404, "grant_not_found")
            if grant["revoked_at"] is not None:
                return  # already revoked: 204, nothing changes
            await conn.execute(
                "UPDATE grants SET revoked_at = now() WHERE zone_id = %s AND id = %s",
                (zone_id, grant_uuid),
            )
            user_id = grant["user_id"]
            revoked = await revoke_subject_sessions(conn, zone_id, user_id)
            async with conn.pipeline():
                for session_id, subject_id in revoked:
                    await enqueue(
                        conn,
                        zone_id=zone_id,
                        topic=TOPIC_SESSION_REVOKE,
                        payload={
                            "zone_id": zone_id,
                            "session_id": session_id,
                            "subject_id": subject_id,
                            "reason": "grant_revoked",
                            "grant_id": str(grant_uuid),
                        },
                    )
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="grant.revoked",
                actor_id=actor_id(request),
                metadata={
                    "grant_id": str(grant_uuid),
                    "user_id": user_id,
                    "revoked_sessions": len(revoked),
                },
            )
