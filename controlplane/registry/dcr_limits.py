"""Dynamic Client Registration limits, counted in PostgreSQL so every process shares them.

- Rate: at most ``settings.dcr_rate_limit`` (10) accepted registrations per zone in any
  sliding one-second window (`take_rate_slot`, SQL function ``caracal_dcr_rate_take``).
- Cap: at most `MAX_ACTIVE_DCR_APPLICATIONS` active (not archived, not expired) DCR
  applications per zone (`check_dcr_capacity`), counted under a per-zone advisory lock held
  until the registering transaction ends, so concurrent registrations cannot overshoot.
"""

from __future__ import annotations

from controlplane.db.pool import Conn
from controlplane.db.rows import one_row
from controlplane.errors import TooManyRequests

MAX_ACTIVE_DCR_APPLICATIONS = 1000
RATE_WINDOW_SECONDS = 1


async def take_rate_slot(conn: Conn, zone_id: str, limit: int) -> None:
    """Record one DCR request for the zone, or raise TooManyRequests dcr_rate_limit_exceeded.

    Call it in a short transaction of its own, committed before the registration runs: a
    request that passes counts even when the registration then fails, and the limiter row
    is not held while the registration works.
    """
    cur = await conn.execute(
        "SELECT caracal_dcr_rate_take(%s, %s, make_interval(secs => %s)) AS ok",
        (zone_id, limit, RATE_WINDOW_SECONDS),
    )
    row = await one_row(cur)
    if not row["ok"]:
        raise TooManyRequests(
            "dcr_rate_limit_exceeded",
            f"at most {limit} registrations per second in a zone",
        )


async def check_dcr_capacity(conn: Conn, zone_id: str) -> None:
    """Lock the zone's DCR count until the transaction ends; TooManyRequests
    dcr_limit_exceeded if full."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('caracal.dcr:' || %s, 0))", (zone_id,)
    )
    cur = await conn.execute(
        "SELECT count(*) AS n FROM active_applications"
        " WHERE zone_id = %s AND registration_method = 'dcr'",
        (zone_id,),
    )
    row = await one_row(cur)
    if row["n"] >= MAX_ACTIVE_DCR_APPLICATIONS:
        raise TooManyRequests(
            "dcr_limit_exceeded",
            f"the zone has {MAX_ACTIVE_DCR_APPLICATIONS} active DCR applications",
        )
