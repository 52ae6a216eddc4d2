"""Liveness and readiness: ``/health`` and ``/ready`` (public)."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec


class Health(msgspec.Struct):
    """GET /health body."""

    ok: bool


class Readiness(msgspec.Struct):
    """GET /ready body."""

    ok: bool
    draining: bool


@get("/health", opt={"scope": "public", "database": False}, tags=["health"])
async def health() -> Health:
    """Always 200 while the process runs."""
    return Health(ok=True)


@get(
    "/ready",
    opt={"scope": "public", "database": False},
    responses={503: ResponseSpec(Readiness, description="Not ready: database down or draining")},
    tags=["health"],
)
async def ready(state: State) -> Response[Readiness]:
    """200 when the database answers and the service is not draining; 503 otherwise."""
    services = state.services
    if services.draining:
        return Response(Readiness(ok=False, draining=True), status_code=503)
    if not await services.db.ping():
        return Response(Readiness(ok=False, draining=False), status_code=503)
    return Response(Readiness(ok=True, draining=False))
