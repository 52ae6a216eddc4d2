"""Sessions (read-only): ``/v1/zones/{zoneId}/sessions``."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import Provide

from controlplane.api.common import services_of
from controlplane.api.pagination import CursorParam, LimitParam, decode_cursor, next_page
from controlplane.decisions import sessions
from controlplane.decisions.sessions import Session, SessionStatus, to_session
from controlplane.services import Services

CURSOR_KIND = "sessions"


class SessionPage(msgspec.Struct):
    """One page of sessions."""

    rows: list[Session]
    next_cursor: str | None


class SessionController(Controller):
    """List sessions and read one."""

    path = "/v1/zones/{zone_id:str}/sessions"
    tags = ["sessions"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/", opt={"errors": {400: "invalid_cursor"}})
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
        before = None
        if cursor is not None:
            position = decode_cursor(services.kek, CURSOR_KIND, zone_id, cursor)
            before = (position.at, position.id)
        async with services.db.transaction() as conn:
            rows = await sessions.list_sessions(
                conn, zone_id, status=status, subject_id=subject_id, before=before, limit=limit + 1
            )
        page, next_cursor = next_page(services.kek, CURSOR_KIND, zone_id, rows, limit, "created_at")
        return SessionPage(rows=[to_session(row) for row in page], next_cursor=next_cursor)

    @get("/{session_id:str}", opt={"errors": {404: "session_not_found"}})
    async def get_session(self, zone_id: str, session_id: str, services: Services) -> Session:
        """One session; 404 session_not_found."""
        async with services.db.transaction() as conn:
            return await sessions.get_session(conn, zone_id, session_id)
