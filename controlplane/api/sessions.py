"""Sessions (read-only): ``/v1/zones/{zoneId}/sessions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Controller, get
from litestar.di import Provide

from controlplane.api.common import require_zone, services_of
from controlplane.api.pagination import CursorParam, LimitParam, decode_cursor, next_page
from controlplane.decisions.sessions import SESSION_STATUS_SQL, status_condition
from controlplane.http.errors import ApiError
from controlplane.services import Services

SessionStatus = Literal["active", "revoked", "expired"]

SESSION_COLUMNS = (
    "id, zone_id, session_type, subject_id, parent_id,"
    f" {SESSION_STATUS_SQL} AS status, expires_at, authenticated_at, created_at"
)
CURSOR_KIND = "sessions"


class Session(msgspec.Struct):
    """Session row."""

    id: str
    zone_id: str
    session_type: str
    subject_id: str
    parent_id: str | None
    status: str
    expires_at: datetime
    authenticated_at: datetime
    created_at: datetime


class SessionPage(msgspec.Struct):
    """One page of sessions."""

    rows: list[Session]
    next_cursor: str | None


def to_session(row: dict[str, Any]) -> Session:
    """Row to response object."""
    return Session(**{name: row[name] for name in Session.__struct_fields__})


class SessionController(Controller):
    """List sessions and read one."""

    path = "/v1/zones/{zone_id:str}/sessions"
    tags = ["sessions"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_sessions(
        self,
        zone_id: str,
        services: Services,
        status: SessionStatus | None = None,
        subject_id: str | None = None,
        limit: LimitParam = 100,
        cursor: CursorParam = None,
    ) -> SessionPage:
        """Sessions, newest first, filtered by derived status and subject."""
        conditions = ["zone_id = %s"]
        params: list[Any] = [zone_id]
        if status is not None:
            conditions.append(status_condition(status))
        if subject_id is not None:
            conditions.append("subject_id = %s")
            params.append(subject_id)
        if cursor is not None:
            position = decode_cursor(services.kek, CURSOR_KIND, zone_id, cursor)
            conditions.append("(created_at, id) < (%s, %s)")
            params += [position.at, position.id]
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {' AND '.join(conditions)}"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (*params, limit + 1),
            )
            rows = await cur.fetchall()
        page, next_cursor = next_page(services.kek, CURSOR_KIND, zone_id, rows, limit, "created_at")
        return SessionPage(rows=[to_session(row) for row in page], next_cursor=next_cursor)

    @get("/{session_id:str}")
    async def get_session(self, zone_id: str, session_id: str, services: Services) -> Session:
        """One session [ours]; 404 session_not_found."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            if "\x00" in session_id:  # never stored (PostgreSQL refuses NUL in text)
                raise ApiError(404, "session_not_found")
            cur = await conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE zone_id = %s AND id = %s",
                (zone_id, session_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "session_not_found")
        return to_session(row)
