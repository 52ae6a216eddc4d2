"""Helpers shared by the resource modules: ids, zone lookup, the services dependency."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import State

from controlplane.db import Conn
from controlplane.errors import ApiError
from controlplane.services import Services


def services_of(state: State) -> Services:
    """Dependency: the process's Services."""
    return state.services


def parse_uuid(value: str, not_found_code: str) -> UUID:
    """A path id as a UUID; anything else answers the same 404 as an unknown id."""
    try:
        return UUID(value)
    except ValueError:
        raise ApiError(404, not_found_code) from None


async def require_zone(conn: Conn, zone_id: str, *, lock: bool = False) -> dict[str, Any]:
    """The active zone row, or 404 zone_not_found."""
    cur = await conn.execute(
        "SELECT * FROM zones WHERE id = %s AND archived_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "zone_not_found")
    return row


def actor_id(request: Request[Any, Any, Any]) -> str:
    """The admin token id of the caller (set by the guard)."""
    return request.state.admin_token.id
