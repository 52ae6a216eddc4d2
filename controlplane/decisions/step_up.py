"""Step-up challenges: opened by the decision API, satisfied through the admin API.

A decision whose combined result asks for ``step_up: {type, ttl}`` opens a challenge for the
input's session (or reuses one of the same type that is still pending), and answers
``partial`` with ``step_up: {id, type}``. While a satisfied, unexpired challenge exists for
the session, the policies see ``input.session.step_up_satisfied = true``
(``controlplane.decisions.sessions.check_session`` computes it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn, Database
from controlplane.db.rows import one_row, parse_uuid
from controlplane.errors import NotFound
from controlplane.keys.secret_fields import redact
from controlplane.pdp.evaluate import Decision
from controlplane.registry.zones import require_zone

__all__ = [
    "MAX_TTL_SECONDS",
    "NOT_FOUND",
    "NO_SESSION_REASON",
    "Challenge",
    "Satisfied",
    "apply_step_up",
    "list_challenges",
    "open_challenge",
    "satisfy",
    "satisfy_challenge",
]

MAX_TTL_SECONDS = 86_400
NO_SESSION_REASON = "step_up_session_required"


async def open_challenge(
    conn: Conn,
    zone_id: str,
    session_id: str,
    challenge_type: str,
    ttl: int,
    metadata: dict[str, Any],
) -> str:
    """The id of a pending challenge of this type for the session, opened if none exists.

    ``ttl`` is clamped to 1..``MAX_TTL_SECONDS``; ``metadata`` is stored redacted.
    """
    cur = await conn.execute(
        "SELECT id FROM step_up_challenges"
        " WHERE zone_id = %s AND session_id = %s AND challenge_type = %s"
        " AND satisfied_at IS NULL AND expires_at > now()"
        " ORDER BY expires_at DESC LIMIT 1",
        (zone_id, session_id, challenge_type),
    )
    row = await cur.fetchone()
    if row is not None:
        return str(row["id"])
    challenge_id = uuid7()
    seconds = min(max(int(ttl), 1), MAX_TTL_SECONDS)
    await conn.execute(
        "INSERT INTO step_up_challenges"
        " (zone_id, id, session_id, challenge_type, metadata_json, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
        (zone_id, challenge_id, session_id, challenge_type, Jsonb(redact(metadata)), seconds),
    )
    return str(challenge_id)


async def satisfy_challenge(
    conn: Conn, zone_id: str, challenge_id: Any
) -> tuple[datetime, bool] | None:
    """Mark an unexpired challenge satisfied (once): ``(satisfied_at, newly)``, or None.

    None means unknown or expired (an expired challenge cannot be satisfied, even again).
    """
    cur = await conn.execute(
        "SELECT satisfied_at FROM step_up_challenges"
        " WHERE zone_id = %s AND id = %s AND expires_at > now() FOR UPDATE",
        (zone_id, challenge_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    if row["satisfied_at"] is not None:
        return row["satisfied_at"], False
    cur = await conn.execute(
        "UPDATE step_up_challenges SET satisfied_at = now()"
        " WHERE zone_id = %s AND id = %s RETURNING satisfied_at",
        (zone_id, challenge_id),
    )
    updated = await one_row(cur)
    return updated["satisfied_at"], True


async def apply_step_up(
    db: Database,
    zone_id: str,
    session_id: str | None,
    decision: Decision,
    request_id: str | None,
) -> tuple[Decision, tuple[str, str] | None]:
    """Open the challenge a decision asks for: ``(decision, (challenge_id, type) | None)``.

    Without a session there is nothing to step up: the decision becomes ``deny`` with reason
    ``step_up_session_required`` (fail closed).
    """
    if decision.step_up is None:
        return decision, None
    if session_id is None:
        return (
            msgspec.structs.replace(
                decision,
                decision="deny",
                reasons=list(dict.fromkeys([*decision.reasons, NO_SESSION_REASON])),
                granted_scopes=[],
                step_up=None,
            ),
            None,
        )
    challenge_type, ttl = decision.step_up["type"], decision.step_up["ttl"]
    metadata = {"request_id": request_id, "ttl": ttl, "reasons": decision.reasons}
    async with db.transaction() as conn:
        challenge_id = await open_challenge(
            conn, zone_id, session_id, challenge_type, ttl, metadata
        )
    return decision, (challenge_id, challenge_type)


# -- the admin API's view -----------------------------------------------------------------------

NOT_FOUND = "challenge_not_found_or_expired"
CHALLENGE_COLUMNS = (
    "id, zone_id, session_id, challenge_type, metadata_json, created_at, expires_at, satisfied_at"
)


class Challenge(msgspec.Struct):
    """Step-up challenge object."""

    id: str
    zone_id: str
    session_id: str
    challenge_type: str
    metadata_json: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    satisfied_at: datetime | None


class Satisfied(msgspec.Struct):
    """The outcome of satisfying a challenge."""

    id: str
    satisfied_at: datetime


def to_challenge(row: dict[str, Any]) -> Challenge:
    """Row to response object."""
    return Challenge(**{**row, "id": str(row["id"])})


async def list_challenges(
    conn: Conn, zone_id: str, *, session_id: str | None, limit: int
) -> list[Challenge]:
    """The zone's challenges, newest first (optionally of one session)."""
    conditions = ["zone_id = %s"]
    params: list[Any] = [zone_id]
    if session_id is not None:
        conditions.append("session_id = %s")
        params.append(session_id)
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        f"SELECT {CHALLENGE_COLUMNS} FROM step_up_challenges"
        f" WHERE {' AND '.join(conditions)}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit),
    )
    return [to_challenge(row) for row in await cur.fetchall()]


async def satisfy(conn: Conn, zone_id: str, challenge_id: str, *, actor: str | None) -> Satisfied:
    """Mark a challenge satisfied; idempotent (the first ``satisfied_at`` is kept, the first
    time records ``step_up_challenge.satisfied``); NotFound for an unknown or expired one."""
    challenge_uuid = parse_uuid(challenge_id, NOT_FOUND)
    await require_zone(conn, zone_id)
    outcome = await satisfy_challenge(conn, zone_id, challenge_uuid)
    if outcome is None:
        raise NotFound(NOT_FOUND)
    satisfied_at, newly = outcome
    if newly:
        await record_event(
            conn,
            zone_id=zone_id,
            event_type="step_up_challenge.satisfied",
            actor_id=actor,
            metadata={"challenge_id": challenge_id},
        )
    return Satisfied(id=str(challenge_uuid), satisfied_at=satisfied_at)
