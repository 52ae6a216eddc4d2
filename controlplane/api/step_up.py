"""Step-up challenges: ``/v1/zones/{zoneId}/step-up-challenges``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import Parameter

from controlplane.api.common import actor_id, services_of
from controlplane.decisions import step_up
from controlplane.decisions.step_up import Challenge, Satisfied
from controlplane.services import Services

ListLimit = Annotated[int, Parameter(ge=1, le=1000, description="at most this many, newest first")]


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
        async with services.db.transaction() as conn:
            return await step_up.list_challenges(conn, zone_id, session_id=session_id, limit=limit)

    @post(
        "/{challenge_id:str}/satisfy",
        status_code=200,
        opt={"errors": {404: "challenge_not_found_or_expired"}},
    )
    async def satisfy(
        self, request: Request, zone_id: str, challenge_id: str, services: Services
    ) -> Satisfied:
        """Mark a challenge satisfied; idempotent (the first ``satisfied_at`` is kept)."""
        async with services.db.transaction() as conn:
            return await step_up.satisfy(conn, zone_id, challenge_id, actor=actor_id(request))
