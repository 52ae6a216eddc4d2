"""Admin-token lifecycle shared by the REST API, the CLI and start-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from uuid6 import uuid7

from controlplane.audit.events import record_event
from controlplane.db.pool import Conn
from controlplane.keys.crypto import generate_admin_token, hash_admin_token

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
    row = await cur.fetchone()
    assert row is not None
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
