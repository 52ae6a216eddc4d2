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
