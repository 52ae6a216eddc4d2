"""Admin tokens: ``/v1/admin-tokens`` (global scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.auth import admin_tokens
from controlplane.auth.admin_tokens import MAX_TOKEN_NAME, MAX_TOKEN_TTL, MIN_TOKEN_TTL
from controlplane.http.errors import invalid_body
from controlplane.services import Services


class AdminTokenInfo(msgspec.Struct):
    """A token as listed (never the token string)."""

    id: str
    name: str | None
    scope: str
    zone_id: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class AdminTokenCreated(msgspec.Struct):
    """POST response: the only time the token string is shown."""

    id: str
    name: str | None
    scope: str
    zone_id: str | None
    created_at: datetime
    expires_at: datetime | None
    token: str


class AdminTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/admin-tokens body."""

    scope: Literal["global", "zone", "pdp"]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_NAME)] | None = None
    zone_id: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    expires_in: Annotated[int, msgspec.Meta(ge=MIN_TOKEN_TTL, le=MAX_TOKEN_TTL)] | None = None

    example: ClassVar[dict[str, Any]] = {"name": "ci", "scope": "zone", "zone_id": "zone1"}
    # ``zone_id`` is required when ``scope`` is ``zone`` or ``pdp`` and refused otherwise
    # (checked in ``create``).
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"scope": {"enum": ["zone", "pdp"]}}},
        "then": {"required": ["zone_id"], "properties": {"zone_id": {"type": "string"}}},
        "else": {"properties": {"zone_id": {"type": "null"}}},
    }


class AdminTokenController(Controller):
    """List, create and revoke admin tokens."""

    path = "/v1/admin-tokens"
    tags = ["admin-tokens"]
    opt = {"scope": "global"}
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_tokens(self, services: Services) -> list[AdminTokenInfo]:
        """Every token, oldest first."""
        async with services.db.transaction() as conn:
            rows = await admin_tokens.list_tokens(conn)
        return [AdminTokenInfo(**{**row, "id": str(row["id"])}) for row in rows]

    @post("/", opt={"errors": {404: "zone_not_found"}})
    async def create(
        self, request: Request, services: Services, data: AdminTokenCreate
    ) -> AdminTokenCreated:
        """Create a token (201); the token string is in this response only."""
        if data.scope != "global" and data.zone_id is None:
            raise invalid_body(f"zone_id is required when scope is {data.scope}", ["zone_id"])
        if data.scope == "global" and data.zone_id is not None:
            raise invalid_body("zone_id is only allowed when scope is zone or pdp", ["zone_id"])
        async with services.db.transaction() as conn:
            row, token = await admin_tokens.issue_token(
                conn,
                scope=data.scope,
                zone_id=data.zone_id,
                name=data.name,
                expires_in=data.expires_in,
                actor=actor_id(request),
            )
        return AdminTokenCreated(
            id=str(row["id"]),
            name=row["name"],
            scope=row["scope"],
            zone_id=row["zone_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            token=token,
        )

    @delete("/{token_id:str}", status_code=204, opt={"errors": {404: "admin_token_not_found"}})
    async def revoke(self, request: Request, token_id: str, services: Services) -> None:
        """Revoke a token: it answers 401 from then on."""
        async with services.db.transaction() as conn:
            token_uuid = await admin_tokens.revoke_token(conn, token_id, actor=actor_id(request))
        services.token_cache.evict(str(token_uuid))
