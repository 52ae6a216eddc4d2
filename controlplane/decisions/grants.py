"""Grants: scopes of a resource an application may use on behalf of a user.

Revoking a grant revokes, in the same transaction, every active session of the grant's user
in the zone and enqueues one ``caracal.session.revoke`` outbox message per session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import newest_first_page, one_row, parse_uuid
from controlplane.decisions.sessions import MAX_ID_LENGTH, revoke_subject_sessions
from controlplane.errors import Forbidden, NotFound
from controlplane.fields import whole_string
from controlplane.outbox.enqueue import TOPIC_SESSION_REVOKE, enqueue
from controlplane.registry.zones import require_zone

GrantScope = Annotated[str, msgspec.Meta(pattern=whole_string("[a-z0-9:_./-]+"), max_length=200)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
GrantStatus = Literal["active", "revoked"]

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


class GrantCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/grants body."""

    application_id: UUID
    user_id: UserId
    resource_id: UUID
    scopes: Annotated[list[GrantScope], msgspec.Meta(min_length=1, max_length=64)]

    example: ClassVar[dict[str, Any]] = {
        "application_id": "0190f3c2-7b1e-7d3a-9c4e-2f6a8b1d5e70",
        "user_id": "user-1",
        "resource_id": "0190f3c2-7b1e-7d3a-9c4e-2f6a8b1d5e71",
        "scopes": ["orders:read"],
    }


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


async def _resource_scopes(conn: Conn, zone_id: str, body: GrantCreate) -> list[str]:
    """Check the application and resource are active (locked against archiving meanwhile)."""
    cur = await conn.execute(
        "SELECT 1 FROM applications WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now()) FOR SHARE",
        (zone_id, body.application_id),
    )
    if await cur.fetchone() is None:
        raise NotFound("application_not_found")
    cur = await conn.execute(
        "SELECT scopes FROM resources WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        " FOR SHARE",
        (zone_id, body.resource_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("resource_not_found")
    return list(row["scopes"])


async def create_grant(conn: Conn, zone_id: str, body: GrantCreate, *, actor: str | None) -> Grant:
    """Create an active grant (Forbidden grant_scopes_exceed_resource for scopes the
    resource does not declare); ``grant.created``."""
    scopes = list(dict.fromkeys(body.scopes))
    await require_zone(conn, zone_id)
    allowed = await _resource_scopes(conn, zone_id, body)
    extra = [scope for scope in scopes if scope not in allowed]
    if extra:
        raise Forbidden(
            "grant_scopes_exceed_resource",
            f"scopes not declared by the resource: {', '.join(extra)}",
        )
    grant_id = uuid7()
    cur = await conn.execute(
        "INSERT INTO grants (zone_id, id, application_id, user_id, resource_id, scopes)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {GRANT_COLUMNS}",
        (zone_id, grant_id, body.application_id, body.user_id, body.resource_id, scopes),
    )
    row = await one_row(cur)
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="grant.created",
        actor_id=actor,
        metadata={
            "grant_id": str(grant_id),
            "application_id": str(body.application_id),
            "user_id": body.user_id,
            "resource_id": str(body.resource_id),
            "scopes": scopes,
        },
    )
    return to_grant(row)


async def list_grants(
    conn: Conn,
    zone_id: str,
    *,
    application_id: UUID | None,
    user_id: str | None,
    resource_id: UUID | None,
    status: GrantStatus | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` grant rows, newest first (``created_at DESC, id DESC``), filtered,
    after the position ``before`` (exclusive) when given."""
    conditions = ["zone_id = %s"]
    params: list[Any] = [zone_id]
    for column, value in (
        ("application_id", application_id),
        ("user_id", user_id),
        ("resource_id", resource_id),
    ):
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    if status is not None:
        conditions.append("revoked_at IS NULL" if status == "active" else "revoked_at IS NOT NULL")
    await require_zone(conn, zone_id)
    return await newest_first_page(conn, "grants", GRANT_COLUMNS, conditions, params, before, limit)


async def get_grant(conn: Conn, zone_id: str, grant_id: str) -> Grant:
    """One grant; NotFound grant_not_found."""
    grant_uuid = parse_uuid(grant_id, "grant_not_found")
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        f"SELECT {GRANT_COLUMNS} FROM grants WHERE zone_id = %s AND id = %s",
        (zone_id, grant_uuid),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("grant_not_found")
    return to_grant(row)


async def revoke_grant(conn: Conn, zone_id: str, grant_id: str, *, actor: str | None) -> None:
    """Revoke the grant, the user's active sessions (one outbox message per session) and
    record ``grant.revoked``; a revoked grant stays as it is."""
    grant_uuid = parse_uuid(grant_id, "grant_not_found")
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        "SELECT user_id, revoked_at FROM grants WHERE zone_id = %s AND id = %s FOR UPDATE",
        (zone_id, grant_uuid),
    )
    grant = await cur.fetchone()
    if grant is None:
        raise NotFound("grant_not_found")
    if grant["revoked_at"] is not None:
        return  # already revoked: nothing changes
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
        actor_id=actor,
        metadata={
            "grant_id": str(grant_uuid),
            "user_id": user_id,
            "revoked_sessions": len(revoked),
        },
    )
