"""Policies: ``/v1/zones/{zoneId}/policies`` — Rego modules with immutable, numbered versions."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.policies import policies
from controlplane.policies.policies import (
    Policy,
    PolicyCreate,
    PolicyDetail,
    PolicyVersion,
    PolicyVersionCreate,
    validate_rego,
)
from controlplane.services import Services


class PolicyController(Controller):
    """List, create, read, version and archive policies."""

    path = "/v1/zones/{zone_id:str}/policies"
    tags = ["policies"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_policies(self, zone_id: str, services: Services) -> list[Policy]:
        """Active policies, oldest first, each with its latest version (no content)."""
        async with services.db.transaction() as conn:
            return await policies.list_policies(conn, zone_id)

    @post("/", opt={"errors": {422: "invalid_rego"}})
    async def create_policy(
        self, request: Request, zone_id: str, services: Services, data: PolicyCreate
    ) -> Policy:
        """Create a policy and its version 1 (201); 422 invalid_rego."""
        error = await validate_rego(data.content, services.settings.opa_compile_check)
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            return await policies.create_policy(conn, zone_id, data, error, actor=actor)

    @get("/{policy_id:str}", opt={"errors": {404: "policy_not_found"}})
    async def get_policy(self, zone_id: str, policy_id: str, services: Services) -> PolicyDetail:
        """The policy with its full version history (with content)."""
        async with services.db.transaction() as conn:
            return await policies.get_policy(conn, zone_id, policy_id)

    @post(
        "/{policy_id:str}/versions",
        opt={"errors": {404: "policy_not_found", 422: "invalid_rego"}},
    )
    async def create_version(
        self,
        request: Request,
        zone_id: str,
        policy_id: str,
        services: Services,
        data: PolicyVersionCreate,
    ) -> PolicyVersion:
        """Add the next immutable version (201); numbering has no gaps under concurrency."""
        error = await validate_rego(data.content, services.settings.opa_compile_check)
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            return await policies.create_version(conn, zone_id, policy_id, data, error, actor=actor)

    @delete("/{policy_id:str}", status_code=204, opt={"errors": {404: "policy_not_found"}})
    async def archive_policy(
        self, request: Request, zone_id: str, policy_id: str, services: Services
    ) -> None:
        """Archive the policy (its versions stay, immutable)."""
        async with services.db.transaction() as conn:
            await policies.archive_policy(conn, zone_id, policy_id, actor=actor_id(request))
