"""Runtime sessions: recorded by the decision API, revoked with grants, read by the admin API.

A decision input may carry ``input.session = {id, subject_id, expires_at, parent_id?, type?,
authenticated_at?}``. The first decision for an unknown id records the session
(``session_type`` = ``type``, else ``"delegated"`` with a parent, else ``"user"``); later
decisions use the stored row (what they say about subject or expiry is ignored). A revoked
or expired session — or one with a revoked or expired recorded ancestor on its
``parent_id`` chain — denies every decision (``session_revoked`` / ``session_expired``)
before any policy runs; a live one tells the policies whether a step-up was satisfied.
Revoking a user's sessions revokes the sessions delegated from them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from controlplane.db.pool import Conn, Database
from controlplane.db.rows import newest_first_page
from controlplane.errors import Invalid, Issue, NotFound
from controlplane.pdp.evaluate import Decision
from controlplane.registry.zones import require_zone

__all__ = [
    "MAX_CHAIN_DEPTH",
    "MAX_ID_LENGTH",
    "SESSION_STATUS_SQL",
    "Session",
    "SessionClaim",
    "SessionGate",
    "SessionState",
    "at_batch_item",
    "check_session",
    "get_session",
    "list_sessions",
    "revoke_subject_sessions",
    "session_claim",
    "session_denial",
    "session_gate",
    "session_gates",
    "status_condition",
    "to_session",
]

MAX_ID_LENGTH = 512
MAX_TYPE_LENGTH = 64

# The derived status of a ``sessions`` row (revoked wins over expired).
SESSION_STATUS_SQL = (
    "CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
    " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END"
)

_STATUS_CONDITIONS = {
    "active": "revoked_at IS NULL AND expires_at > now()",
    "revoked": "revoked_at IS NOT NULL",
    "expired": "revoked_at IS NULL AND expires_at <= now()",
}


def status_condition(status: str) -> str:
    """The WHERE condition selecting sessions whose derived status is ``status``."""
    return _STATUS_CONDITIONS[status]


class SessionClaim:
    """What a decision input says about its session (validated, not yet checked)."""

    __slots__ = ("authenticated_at", "expires_at", "id", "parent_id", "session_type", "subject_id")

    def __init__(
        self,
        id: str,
        subject_id: str | None,
        expires_at: datetime | None,
        parent_id: str | None,
        session_type: str | None,
        authenticated_at: datetime | None,
    ) -> None:
        self.id = id
        self.subject_id = subject_id
        self.expires_at = expires_at
        self.parent_id = parent_id
        self.session_type = session_type
        self.authenticated_at = authenticated_at

    @property
    def recordable(self) -> bool:
        """True when the claim carries what recording a new session needs."""
        return self.subject_id is not None and self.expires_at is not None


class SessionState:
    """The outcome of the session check for one decision."""

    __slots__ = ("deny_reason", "step_up_satisfied")

    def __init__(self, deny_reason: str | None, step_up_satisfied: bool) -> None:
        self.deny_reason = deny_reason
        self.step_up_satisfied = step_up_satisfied


def _bad(field: str, message: str) -> Invalid:
    return Invalid.body(message, ["input", "session", field])


def _text(raw: dict[str, Any], field: str, limit: int) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise _bad(field, f"Expected a string of 1 to {limit} characters")
    return value


def _timestamp(raw: dict[str, Any], field: str) -> datetime | None:
    value = raw.get(field)
    if value is None:
        return None
    parsed = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _bad(field, "Expected an RFC 3339 timestamp with a time zone")
    return parsed


def session_claim(decision_input: dict[str, Any]) -> SessionClaim | None:
    """The session claim of a decision input, or None when it has no ``session.id``.

    Present fields must be well-formed (else ``Invalid`` invalid_body with the issue's path
    under ``input.session``); whether the missing ones matter is decided by ``check_session``.
    """
    raw = decision_input.get("session")
    if not isinstance(raw, dict) or raw.get("id") is None:
        return None
    return SessionClaim(
        id=_text(raw, "id", MAX_ID_LENGTH) or "",
        subject_id=_text(raw, "subject_id", MAX_ID_LENGTH),
        expires_at=_timestamp(raw, "expires_at"),
        parent_id=_text(raw, "parent_id", MAX_ID_LENGTH),
        session_type=_text(raw, "type", MAX_TYPE_LENGTH),
        authenticated_at=_timestamp(raw, "authenticated_at"),
    )


#: How many ancestors of a delegated session are checked (a deeper chain, or a cycle of
#: parent ids, is cut off there).
MAX_CHAIN_DEPTH = 32

# A session is revoked (expired) when it or any recorded ancestor is. An ancestor that was
# never recorded is not known to this control plane and is not checked.
_STATE_SQL = f"""
SELECT s.revoked_at IS NOT NULL OR coalesce(up.revoked, false) AS revoked,
       s.expires_at <= now() OR coalesce(up.expired, false) AS expired,
       EXISTS (
           SELECT 1 FROM step_up_challenges c
           WHERE c.zone_id = s.zone_id AND c.session_id = s.id
             AND c.satisfied_at IS NOT NULL AND c.expires_at > now()
       ) AS step_up_satisfied
FROM {{source}} s
LEFT JOIN LATERAL (
    WITH RECURSIVE chain (id, parent_id, revoked_at, expires_at, depth) AS (
        SELECT p.id, p.parent_id, p.revoked_at, p.expires_at, 1
        FROM sessions p WHERE p.zone_id = s.zone_id AND p.id = s.parent_id
        UNION ALL
        SELECT p.id, p.parent_id, p.revoked_at, p.expires_at, chain.depth + 1
        FROM chain JOIN sessions p ON p.zone_id = s.zone_id AND p.id = chain.parent_id
        WHERE chain.depth < {MAX_CHAIN_DEPTH}
    )
    SELECT bool_or(revoked_at IS NOT NULL) AS revoked, bool_or(expires_at <= now()) AS expired
    FROM chain
) up ON s.parent_id IS NOT NULL
"""

_SELECT_SQL = _STATE_SQL.format(source="sessions") + " WHERE s.zone_id = %s AND s.id = %s"

_RECORD_SQL = (
    "WITH inserted AS ("
    " INSERT INTO sessions (zone_id, id, session_type, subject_id, parent_id, expires_at,"
    " authenticated_at)"
    " SELECT %s, %s, %s, %s, %s, %s, coalesce(%s, now())"
    " WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE zone_id = %s AND id = %s)"
    " ON CONFLICT (zone_id, id) DO NOTHING"
    " RETURNING zone_id, id, parent_id, revoked_at, expires_at),"
    " found AS ("
    " SELECT zone_id, id, parent_id, revoked_at, expires_at FROM inserted"
    " UNION ALL"
    " SELECT zone_id, id, parent_id, revoked_at, expires_at FROM sessions"
    " WHERE zone_id = %s AND id = %s)" + _STATE_SQL.format(source="found") + " LIMIT 1"
)


def _session_type(claim: SessionClaim) -> str:
    if claim.session_type is not None:
        return claim.session_type
    return "delegated" if claim.parent_id is not None else "user"


async def _state_row(conn: Conn, zone_id: str, claim: SessionClaim) -> dict[str, Any] | None:
    if claim.recordable:
        cur = await conn.execute(
            _RECORD_SQL,
            (
                zone_id,
                claim.id,
                _session_type(claim),
                claim.subject_id,
                claim.parent_id,
                claim.expires_at,
                claim.authenticated_at,
                zone_id,
                claim.id,
                zone_id,
                claim.id,
            ),
        )
        row = await cur.fetchone()
        if row is not None:
            return row
        # A concurrent decision recorded it after this statement's snapshot: read it now.
    cur = await conn.execute(_SELECT_SQL, (zone_id, claim.id))
    return await cur.fetchone()


async def check_session(conn: Conn, zone_id: str, claim: SessionClaim) -> SessionState:
    """Record the session if it is new, then say whether decisions for it may proceed.

    An unknown session whose claim lacks ``subject_id`` or ``expires_at`` cannot be recorded:
    ``Invalid`` invalid_body.
    """
    row = await _state_row(conn, zone_id, claim)
    if row is None:
        missing = "subject_id" if claim.subject_id is None else "expires_at"
        raise Invalid.body(
            f"Object missing required field `{missing}`"
            " (needed to record a session seen for the first time)",
            ["input", "session"],
        )
    if row["revoked"]:
        return SessionState("session_revoked", False)
    if row["expired"]:
        return SessionState("session_expired", False)
    return SessionState(None, bool(row["step_up_satisfied"]))


async def revoke_subject_sessions(
    conn: Conn, zone_id: str, subject_id: str
) -> list[tuple[str, str]]:
    """Revoke every active session of ``subject_id`` in the zone and every active session
    delegated from one of them (down the ``parent_id`` chain, whoever its subject);
    return ``(session_id, subject_id)`` of each, ordered by session id."""
    cur = await conn.execute(
        f"""
        WITH RECURSIVE doomed (id, depth) AS (
            SELECT id, 0 FROM sessions
            WHERE zone_id = %(zone)s AND subject_id = %(subject)s
              AND revoked_at IS NULL AND expires_at > now()
            UNION
            SELECT child.id, doomed.depth + 1
            FROM doomed JOIN sessions child
              ON child.zone_id = %(zone)s AND child.parent_id = doomed.id
            WHERE doomed.depth < {MAX_CHAIN_DEPTH}
        )
        UPDATE sessions SET revoked_at = now()
        WHERE zone_id = %(zone)s AND id IN (SELECT id FROM doomed)
          AND revoked_at IS NULL AND expires_at > now()
        RETURNING id, subject_id
        """,
        {"zone": zone_id, "subject": subject_id},
    )
    return sorted((row["id"], row["subject_id"]) for row in await cur.fetchall())


class SessionGate:
    """The session stage of a decision: the input policies see, or why to deny at once."""

    __slots__ = ("deny_reason", "input", "session_id")

    def __init__(
        self, input: dict[str, Any], session_id: str | None, deny_reason: str | None
    ) -> None:
        self.input = input
        self.session_id = session_id
        self.deny_reason = deny_reason


async def session_gate(db: Database, zone_id: str, decision_input: dict[str, Any]) -> SessionGate:
    """Check (and record) the input's session before any policy runs.

    ``input.session.step_up_satisfied`` belongs to the server: it is set from the stored
    challenges for a live session and forced to false for a session object without an id.
    """
    claim = session_claim(decision_input)
    if claim is None:
        return _without_session(decision_input)
    async with db.transaction() as conn:
        return await _checked(conn, zone_id, decision_input, claim)


async def session_gates(
    db: Database, zone_id: str, inputs: list[dict[str, Any]]
) -> list[SessionGate]:
    """``session_gate`` for each of a batch's inputs, all in one transaction: an ``Invalid``
    session in any input (its issue paths moved under ``["inputs", i]``) rolls back every
    session recorded for the batch."""
    claims = []
    for index, decision_input in enumerate(inputs):
        try:
            claims.append(session_claim(decision_input))
        except Invalid as exc:
            raise at_batch_item(exc, index) from None
    if all(claim is None for claim in claims):
        return [_without_session(decision_input) for decision_input in inputs]
    gates = []
    async with db.transaction() as conn:
        for index, (decision_input, claim) in enumerate(zip(inputs, claims, strict=True)):
            if claim is None:
                gates.append(_without_session(decision_input))
                continue
            try:
                gates.append(await _checked(conn, zone_id, decision_input, claim))
            except Invalid as exc:
                raise at_batch_item(exc, index) from None
    return gates


def _without_session(decision_input: dict[str, Any]) -> SessionGate:
    """The gate of an input without a session id (a session object gets no step-up)."""
    raw = decision_input.get("session")
    if isinstance(raw, dict):
        session = {**raw, "step_up_satisfied": False}
        return SessionGate({**decision_input, "session": session}, None, None)
    return SessionGate(decision_input, None, None)


async def _checked(
    conn: Conn, zone_id: str, decision_input: dict[str, Any], claim: SessionClaim
) -> SessionGate:
    """The gate of an input with a session claim, checked (and recorded) on ``conn``."""
    state = await check_session(conn, zone_id, claim)
    if state.deny_reason is not None:
        return SessionGate(decision_input, claim.id, state.deny_reason)
    session = {**decision_input["session"], "step_up_satisfied": state.step_up_satisfied}
    return SessionGate({**decision_input, "session": session}, claim.id, None)


def at_batch_item(error: Invalid, index: int) -> Invalid:
    """``error`` with each issue path (``["input", …]``) moved under ``["inputs", index]``."""
    issues = [
        Issue(path=["inputs", index, *issue.path[1:]], message=issue.message)
        for issue in error.issues or []
    ]
    return Invalid(error.code, error.detail, issues)


def session_denial(reason: str) -> Decision:
    """The decision for a revoked or expired session: deny, no policy evaluated."""
    return Decision(
        decision="deny",
        reasons=[reason],
        granted_scopes=[],
        obligations={},
        step_up=None,
        determining_policies=[],
        diagnostics=[],
    )


# -- the admin API's view -----------------------------------------------------------------------

SessionStatus = Literal["active", "revoked", "expired"]

SESSION_COLUMNS = (
    "id, zone_id, session_type, subject_id, parent_id,"
    f" {SESSION_STATUS_SQL} AS status, expires_at, authenticated_at, created_at"
)


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


def to_session(row: dict[str, Any]) -> Session:
    """Row to response object."""
    return Session(**{name: row[name] for name in Session.__struct_fields__})


async def list_sessions(
    conn: Conn,
    zone_id: str,
    *,
    status: SessionStatus | None,
    subject_id: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` session rows, newest first, filtered by derived status and subject,
    after the position ``before`` (exclusive) when given."""
    conditions = ["zone_id = %s"]
    params: list[Any] = [zone_id]
    if status is not None:
        conditions.append(status_condition(status))
    if subject_id is not None:
        conditions.append("subject_id = %s")
        params.append(subject_id)
    await require_zone(conn, zone_id)
    return await newest_first_page(
        conn, "sessions", SESSION_COLUMNS, conditions, params, before, limit
    )


async def get_session(conn: Conn, zone_id: str, session_id: str) -> Session:
    """One session; NotFound session_not_found."""
    await require_zone(conn, zone_id)
    if "\x00" in session_id:  # never stored (PostgreSQL refuses NUL in text)
        raise NotFound("session_not_found")
    cur = await conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE zone_id = %s AND id = %s",
        (zone_id, session_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("session_not_found")
    return to_session(row)
