"""The audit write path: one helper that every mutating handler calls inside its transaction."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.db.pool import Conn
from controlplane.keys.secret_fields import redact
from controlplane.request_id import current_request_id


async def record_event(
    conn: Conn,
    *,
    zone_id: str | None,
    event_type: str,
    actor_id: str | None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Insert one admin audit event (``decision`` null) in the caller's transaction."""
    event_id = uuid7()
    body = dict(metadata or {})
    if actor_id is not None:
        body.setdefault("actor", actor_id)
    await conn.execute(
        "INSERT INTO audit_events (id, zone_id, event_type, request_id, actor_id, metadata_json)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (event_id, zone_id, event_type, current_request_id(), actor_id, Jsonb(redact(body))),
    )
    return str(event_id)
