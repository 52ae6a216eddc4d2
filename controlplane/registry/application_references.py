"""Is an application referenced by the zone's active policies?

An application is referenced when its id appears (case-insensitively) in the content of a
policy version of the zone's active or shadow policy-set version (``sql/0003_policies.sql``).
"""

from __future__ import annotations

from uuid import UUID

from controlplane.db.pool import Conn
from controlplane.db.rows import one_row


async def application_referenced_by_active_policy(conn: Conn, zone_id: str, app_id: UUID) -> bool:
    """True when an active or shadow policy version of the zone mentions ``app_id``."""
    cur = await conn.execute(
        "SELECT EXISTS ("
        " SELECT 1 FROM zone_policy_state s"
        " JOIN policy_set_version_entries e ON e.zone_id = s.zone_id"
        "  AND e.policy_set_version_id IN (s.active_version_id, s.shadow_version_id)"
        " JOIN policy_versions v ON v.zone_id = e.zone_id AND v.id = e.policy_version_id"
        " WHERE s.zone_id = %s AND strpos(lower(v.content), %s) > 0"
        ") AS referenced",
        (zone_id, str(app_id).lower()),
    )
    row = await one_row(cur)
    return bool(row["referenced"])
