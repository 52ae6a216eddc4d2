"""Helpers shared by the resource modules: ids, zone lookup, the services dependency."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import State
from psycopg import errors as pg_errors

from controlplane.db.pool import Conn
from controlplane.db.rows import one_row
from controlplane.http.errors import ApiError
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
    """The active zone row, or 404 zone_not_found.

    ``lock`` takes the zone row ``FOR NO KEY UPDATE`` until the transaction ends: zone
    updates and archiving, policy-set activation and an application's downgrade to
    ``public`` serialise on it (rows referencing the zone can still be inserted meanwhile).
    """
    if "\x00" in zone_id:  # no stored id has one, and PostgreSQL refuses it in a query
        raise ApiError(404, "zone_not_found")
    cur = await conn.execute(
        "SELECT * FROM zones WHERE id = %s AND archived_at IS NULL"
        + (" FOR NO KEY UPDATE" if lock else ""),
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "zone_not_found")
    return row


def actor_id(request: Request[Any, Any, Any]) -> str:
    """The admin token id of the caller (set by the guard)."""
    return request.state.admin_token.id


async def returning_unique(
    conn: Conn, sql: str, params: tuple[Any, ...], constraint: str, conflict: ApiError
) -> dict[str, Any]:
    """Run an INSERT/UPDATE … RETURNING in a savepoint; a unique violation of ``constraint``
    raises ``conflict`` (any other stays an error)."""
    try:
        async with conn.transaction():
            cur = await conn.execute(sql, params)
            return await one_row(cur)
    except pg_errors.UniqueViolation as exc:
        if exc.diag.constraint_name == constraint:
            raise conflict from None
        raise
