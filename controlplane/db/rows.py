"""Row helpers shared by the domain operations: the row a statement certainly returns, path
ids as row keys, guarded writes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncCursor
from psycopg import errors as pg_errors

from controlplane.db.pool import Conn
from controlplane.errors import DomainError, NotFound

Row = dict[str, Any]


async def one_row(cur: AsyncCursor[Row]) -> Row:
    """The row of a statement that always returns one (an aggregate, ``EXISTS``, or a
    ``RETURNING`` of a row the transaction holds); none is a defect, never a user error."""
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("a statement that always returns a row returned none")
    return row


def parse_uuid(value: str, not_found_code: str) -> UUID:
    """An id as a UUID; anything else is the same NotFound as an unknown id."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(not_found_code) from None


async def returning_unique(
    conn: Conn, sql: str, params: tuple[Any, ...], constraint: str, conflict: DomainError
) -> Row:
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


async def require_active(
    conn: Conn,
    table: str,
    columns: str,
    zone_id: str,
    row_id: str,
    not_found_code: str,
    *,
    lock: bool = False,
) -> Row:
    """The zone's active (not archived) row of ``table`` with id ``row_id`` — ``FOR UPDATE``
    when ``lock`` — or NotFound ``not_found_code`` (also for an id that is not a UUID)."""
    row_uuid = parse_uuid(row_id, not_found_code)
    cur = await conn.execute(
        f"SELECT {columns} FROM {table}"  # table and columns are constants of the caller
        " WHERE zone_id = %s AND id = %s AND archived_at IS NULL" + (" FOR UPDATE" if lock else ""),
        (zone_id, row_uuid),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(not_found_code)
    return row


async def newest_first_page(
    conn: Conn,
    table: str,
    columns: str,
    conditions: list[str],
    params: list[Any],
    before: tuple[Any, Any] | None,
    limit: int,
) -> list[Row]:
    """Up to ``limit`` rows of ``table`` matching every condition, newest first by
    ``(created_at, id)``, after the keyset position ``before`` (exclusive) when given."""
    if before is not None:
        conditions = [*conditions, "(created_at, id) < (%s, %s)"]
        params = [*params, *before]
    cur = await conn.execute(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(conditions)}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit),
    )
    return await cur.fetchall()
