"""Seed rows the admin API cannot create directly (sessions, challenges, audit events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from uuid6 import uuid7


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def insert_session(
    db: psycopg.Connection[Any],
    zone_id: str,
    session_id: str,
    *,
    subject_id: str = "user@example.com",
    session_type: str = "user",
    parent_id: str | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> None:
    """Insert one session row."""
    created = created_at or now()
    db.execute(
        "INSERT INTO sessions (zone_id, id, session_type, subject_id, parent_id, expires_at,"
        " authenticated_at, created_at, revoked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            zone_id,
            session_id,
            session_type,
            subject_id,
            parent_id,
            expires_at or created + timedelta(hours=1),
            created,
            created,
            revoked_at,
        ),
    )


def insert_challenge(
    db: psycopg.Connection[Any],
    zone_id: str,
    session_id: str,
    *,
    challenge_type: str = "mfa",
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Insert one step-up challenge; return its id."""
    challenge_id = uuid7()
    db.execute(
        "INSERT INTO step_up_challenges (zone_id, id, session_id, challenge_type, metadata_json,"
        " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            zone_id,
            challenge_id,
            session_id,
            challenge_type,
            json.dumps(metadata or {}),
            created_at or now(),
            expires_at or now() + timedelta(minutes=5),
        ),
    )
    return str(challenge_id)


def insert_event(
    db: psycopg.Connection[Any],
    zone_id: str | None,
    *,
    event_type: str = "decision",
    occurred_at: datetime | None = None,
    request_id: str | None = None,
    decision: str | None = None,
    metadata: dict[str, Any] | None = None,
    event_id: UUID | None = None,
    **extra: Any,
) -> str:
    """Insert one audit event; ``extra`` sets further columns (diagnostics, …)."""
    columns = {
        "id": event_id or uuid7(),
        "zone_id": zone_id,
        "event_type": event_type,
        "request_id": request_id,
        "decision": decision,
        "metadata_json": json.dumps(metadata or {}),
        "occurred_at": occurred_at or now(),
    }
    for name, value in extra.items():
        columns[name] = json.dumps(value) if isinstance(value, list | dict) else value
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO audit_events ({names}) VALUES ({marks})", tuple(columns.values()))
    return str(columns["id"])
