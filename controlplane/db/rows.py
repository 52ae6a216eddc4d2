"""The one row a statement certainly returns."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncCursor

Row = dict[str, Any]


async def one_row(cur: AsyncCursor[Row]) -> Row:
    """The row of a statement that always returns one (an aggregate, ``EXISTS``, or a
    ``RETURNING`` of a row the transaction holds); none is a defect, never a user error."""
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("a statement that always returns a row returned none")
    return row
