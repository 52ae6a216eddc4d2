"""Step-up challenges: ``/v1/zones/{zoneId}/step-up-challenges``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import Parameter

from controlplane.api.common import actor_id, parse_uuid, require_zone, services_of
from controlplane.audit.events import record_event
from controlplane.decisions.step_up import satisfy_challenge
from controlplane.http.errors import ApiError
from controlplane.services import Services

NOT_FOUND = "challenge_not_found_or_expired"
CHALLENGE_COLUMNS = (
    "id, zone_id, session_id, challenge_type, metadata_json, created_at, expires_at, satisfied_at"
)

ListLimit = Annotated[int, Parameter(ge=1, le=1000, description="at most this many, newest first")]


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
    """POST …/satisfy response."""

    id: str
    satisfied_at: datetime


def to_challenge(row: dict[str, Any]) -> Challenge:
    """Row to response object."""
    return Challenge(**{**row, "id": str(row["id"])})


class StepUpController(Controller):
    """List and satisfy step-up challenges."""

    path = "/v1/zones/{zone_id:str}/step-up-challenges"
    tags = ["step-up"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_challenges(
        self,
        zone_id: str,
        services: Services,
        session_id: str | None = None,
        limit: ListLimit = 1000,
    ) -> list[Challenge]:
        """The zone's challenges, newest first (optionally of one session)."""
        conditions = ["zone_id = %s"]
        params: list[Any] = [zone_id]
        if session_id is not None:
            conditions.append("session_id = %s")
            params.append(session_id)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(
                f"SELECT {CHALLENGE_COLUMNS} FROM step_up_challenges"
                f" WHERE {' AND '.join(conditions)}"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (*params, limit),
            )
            return [to_challenge(row) for row in await cur.fetchall()]

    @post("/{challenge_id:str}/satisfy", status_code=200)
    async def satisfy(
        self, request: Request, zone_id: str, challenge_id: str, services: Services
    ) -> Satisfied:
        """Mark a challenge satisfied; idempotent (the first ``satisfied_at`` is kept)."""
        challenge_uuid = parse_uuid(challenge_id, NOT_FOUND)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            outcome = await satisfy_challenge(conn, zone_id, challenge_uuid)
            if outcome is None:
                raise ApiError(404, NOT_FOUND)
            satisfied_at, newly = outcome
            if newly:
                await record_event(
                    conn,
                    zone_id=zone_id,
                    event_type="step_up_challenge.satisfied",
                    actor_id=actor_id(request),
                    metadata={"challenge_id": challenge_id},
                )
        return Satisfied(id=str(challenge_uuid), satisfied_at=satisfied_at)
