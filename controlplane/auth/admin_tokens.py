"""Admin-token lifecycle shared by the REST API, the CLI and start-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row, parse_uuid
from controlplane.errors import NotFound
from controlplane.keys.crypto import generate_admin_token, hash_admin_token
from controlplane.registry.zones import require_zone

TOKEN_COLUMNS = "id, name, scope, zone_id, created_at, expires_at, last_used_at, revoked_at"
ENV_TOKEN_NAME = "env:CARACAL_ADMIN_TOKEN"
#: A token's lifetime (``expires_in``, ``--ttl``): 60 s to 10 years.
MIN_TOKEN_TTL = 60
MAX_TOKEN_TTL = 10 * 365 * 86_400
#: Longest token ``name``.
MAX_TOKEN_NAME = 200


async def create_token(
    conn: Conn, *, scope: str, zone_id: str | None, name: str | None, expires_in: int | None
) -> tuple[dict[str, Any], str]:
    """Insert a new token; return its row and the token string (shown once)."""
    token = generate_admin_token()
    cur = await conn.execute(
        "INSERT INTO admin_tokens (id, name, scope, zone_id, token_sha256, expires_at)"
        " VALUES (%s, %s, %s, %s, %s,"
        " CASE WHEN %s::integer IS NULL THEN NULL ELSE now() + make_interval(secs => %s) END)"
        f" RETURNING {TOKEN_COLUMNS}",
        (uuid7(), name, scope, zone_id, hash_admin_token(token), expires_in, expires_in),
    )
    row = await one_row(cur)
    return row, token


async def upsert_env_token(conn: Conn, token: str) -> None:
    """Make ``CARACAL_ADMIN_TOKEN`` a global token (kept as it is if it exists already)."""
    await conn.execute(
        "INSERT INTO admin_tokens (id, name, scope, token_sha256) VALUES (%s, %s, 'global', %s)"
        " ON CONFLICT (token_sha256) DO NOTHING",
        (uuid7(), ENV_TOKEN_NAME, hash_admin_token(token)),
    )


def format_expiry(value: datetime | None) -> str:
    """Human-readable expiry for the CLI."""
    return "never" if value is None else value.isoformat()


async def record_token_created(conn: Conn, row: dict[str, Any], *, actor: str | None) -> None:
    """The ``admin_token.created`` audit event of a new token (REST API or CLI)."""
    await record_event(
        conn,
        zone_id=row["zone_id"],
        event_type="admin_token.created",
        actor_id=actor,
        metadata={"token_id": str(row["id"]), "scope": row["scope"], "name": row["name"]},
    )


async def list_tokens(conn: Conn) -> list[dict[str, Any]]:
    """Every token's row, oldest first."""
    cur = await conn.execute(f"SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY created_at, id")
    return await cur.fetchall()


async def issue_token(
    conn: Conn,
    *,
    scope: str,
    zone_id: str | None,
    name: str | None,
    expires_in: int | None,
    actor: str | None,
) -> tuple[dict[str, Any], str]:
    """``create_token`` for an active zone (NotFound zone_not_found) with its audit event."""
    if zone_id is not None:
        await require_zone(conn, zone_id)
    row, token = await create_token(
        conn, scope=scope, zone_id=zone_id, name=name, expires_in=expires_in
    )
    await record_token_created(conn, row, actor=actor)
    return row, token


async def revoke_token(conn: Conn, token_id: str, *, actor: str | None) -> UUID:
    """Revoke a token (it answers 401 from then on) and record ``admin_token.revoked``; a
    revoked token stays as it is. Returns the token's id, for the caller to evict it from
    its cache after the commit; NotFound admin_token_not_found."""
    token_uuid = parse_uuid(token_id, "admin_token_not_found")
    cur = await conn.execute(
        "SELECT zone_id, revoked_at FROM admin_tokens WHERE id = %s FOR UPDATE", (token_uuid,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("admin_token_not_found")
    if row["revoked_at"] is not None:
        return token_uuid  # revoked already: nothing changes, nothing to audit
    await conn.execute("UPDATE admin_tokens SET revoked_at = now() WHERE id = %s", (token_uuid,))
    await record_event(
        conn,
        zone_id=row["zone_id"],
        event_type="admin_token.revoked",
        actor_id=actor,
        metadata={"token_id": token_id},
    )
    return token_uuid
