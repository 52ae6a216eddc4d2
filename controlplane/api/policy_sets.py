"""Policy sets: ``/v1/zones/{zoneId}/policy-sets`` — versioned manifests and activation."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.policies import activation, policy_sets
from controlplane.policies.activation import ActivateBody, Activation
from controlplane.policies.policy_sets import (
    PolicySet,
    PolicySetCreate,
    PolicySetDetail,
    PolicySetVersion,
    PolicySetVersionCreate,
    check_manifest,
)
from controlplane.services import Services


class PolicySetController(Controller):
    """Create, list, read, version, activate and archive policy sets."""

    path = "/v1/zones/{zone_id:str}/policy-sets"
    tags = ["policy-sets"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_sets(self, zone_id: str, services: Services) -> list[PolicySet]:
        """Active policy sets, oldest first."""
        async with services.db.transaction() as conn:
            return await policy_sets.list_sets(conn, zone_id)

    @post("/")
    async def create_set(
        self, request: Request, zone_id: str, services: Services, data: PolicySetCreate
    ) -> PolicySet:
        """Create a policy set (201); it has no version until one is posted."""
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            return await policy_sets.create_set(conn, zone_id, data, actor=actor)

    @get("/{set_id:str}", opt={"errors": {404: "policy_set_not_found"}})
    async def get_set(self, zone_id: str, set_id: str, services: Services) -> PolicySetDetail:
        """The set with every version (and its manifest), ascending."""
        async with services.db.transaction() as conn:
            return await policy_sets.get_set(conn, zone_id, set_id)

    @post(
        "/{set_id:str}/versions",
        opt={
            "errors": {
                404: ("policy_set_not_found", "policy_version_not_found"),
                422: "invalid_policy_contract",
            }
        },
    )
    async def create_version(
        self,
        request: Request,
        zone_id: str,
        set_id: str,
        services: Services,
        data: PolicySetVersionCreate,
    ) -> PolicySetVersion:
        """Add the next immutable set version from a manifest (201)."""
        check_manifest(data.manifest)
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            return await policy_sets.create_version(conn, zone_id, set_id, data, actor=actor)

    @post(
        "/{set_id:str}/activate",
        status_code=202,
        opt={
            "errors": {
                404: ("policy_set_not_found", "version_not_found", "shadow_version_not_found"),
                409: "referenced_policy_version_missing",
                422: "invalid_policy_contract",
            }
        },
    )
    async def activate(
        self, request: Request, zone_id: str, set_id: str, services: Services, data: ActivateBody
    ) -> Activation:
        """Make a version of this set the zone's single active version (optionally with a
        shadow version of any live set of the zone); the invalidation goes through the outbox."""
        actor = actor_id(request)
        runtime = services.runtime
        async with services.db.transaction() as conn:
            result, state = await activation.activate(
                conn, runtime, zone_id, set_id, data, actor=actor
            )
        runtime.install(state)
        return result

    @delete("/{set_id:str}", status_code=204, opt={"errors": {404: "policy_set_not_found"}})
    async def archive_set(
        self, request: Request, zone_id: str, set_id: str, services: Services
    ) -> None:
        """Archive the set. A zone whose active version belongs to it keeps evaluating it."""
        async with services.db.transaction() as conn:
            await policy_sets.archive_set(conn, zone_id, set_id, actor=actor_id(request))
