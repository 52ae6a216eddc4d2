"""Resources: ``/v1/zones/{zoneId}/resources``."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.fields import changes_of
from controlplane.registry import resources
from controlplane.registry.resources import (
    Resource,
    ResourceCreate,
    ResourcePatch,
    check_upstream_url,
)
from controlplane.services import Services


class ResourceController(Controller):
    """List, create, read, update and archive resources."""

    path = "/v1/zones/{zone_id:str}/resources"
    tags = ["resources"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_resources(self, zone_id: str, services: Services) -> list[Resource]:
        """Active resources of the zone, oldest first."""
        async with services.db.transaction() as conn:
            return await resources.list_resources(conn, zone_id)

    @post(
        "/",
        opt={"errors": {404: "provider_not_found", 409: "resource_identifier_taken"}},
    )
    async def create_resource(
        self, request: Request, zone_id: str, services: Services, data: ResourceCreate
    ) -> Resource:
        """Create a resource (201)."""
        check_upstream_url(data.upstream_url)
        async with services.db.transaction() as conn:
            return await resources.create_resource(conn, zone_id, data, actor=actor_id(request))

    @get("/{resource_id:str}", opt={"errors": {404: "resource_not_found"}})
    async def get_resource(self, zone_id: str, resource_id: str, services: Services) -> Resource:
        """One active resource."""
        async with services.db.transaction() as conn:
            return await resources.get_resource(conn, zone_id, resource_id)

    @patch(
        "/{resource_id:str}",
        opt={
            "errors": {
                400: "no_fields",
                404: ("resource_not_found", "provider_not_found"),
                409: "resource_identifier_taken",
            }
        },
    )
    async def update_resource(
        self,
        request: Request,
        zone_id: str,
        resource_id: str,
        services: Services,
        data: ResourcePatch,
    ) -> Resource:
        """Partial update."""
        changes = changes_of(data)
        check_upstream_url(changes.get("upstream_url"))
        async with services.db.transaction() as conn:
            return await resources.update_resource(
                conn, zone_id, resource_id, changes, actor=actor_id(request)
            )

    @delete("/{resource_id:str}", status_code=204, opt={"errors": {404: "resource_not_found"}})
    async def archive_resource(
        self, request: Request, zone_id: str, resource_id: str, services: Services
    ) -> None:
        """Archive (soft delete); the identifier becomes free again."""
        async with services.db.transaction() as conn:
            await resources.archive_resource(conn, zone_id, resource_id, actor=actor_id(request))
