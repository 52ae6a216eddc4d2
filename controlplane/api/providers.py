"""Providers: ``/v1/zones/{zoneId}/providers``, secrets encrypted under the zone DEK."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.fields import changes_of
from controlplane.registry import providers
from controlplane.registry.providers import Provider, ProviderCreate, ProviderPatch, split_config
from controlplane.services import Services


class ProviderController(Controller):
    """List, create, read, update and archive providers."""

    path = "/v1/zones/{zone_id:str}/providers"
    tags = ["providers"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_providers(self, zone_id: str, services: Services) -> list[Provider]:
        """Active providers of the zone, oldest first."""
        async with services.db.transaction() as conn:
            return await providers.list_providers(conn, zone_id)

    @post("/", opt={"errors": {409: "provider_identifier_taken"}})
    async def create_provider(
        self, request: Request, zone_id: str, services: Services, data: ProviderCreate
    ) -> Provider:
        """Create a provider (201); secret fields are encrypted, only their paths listed."""
        config = split_config(data.config_json, data.secret_config)
        async with services.db.transaction() as conn:
            return await providers.create_provider(
                conn, services.kek, zone_id, data, config, actor=actor_id(request)
            )

    @get("/{provider_id:str}", opt={"errors": {404: "provider_not_found"}})
    async def get_provider(self, zone_id: str, provider_id: str, services: Services) -> Provider:
        """One active provider."""
        async with services.db.transaction() as conn:
            return await providers.get_provider(conn, zone_id, provider_id)

    @patch(
        "/{provider_id:str}",
        opt={
            "errors": {
                400: "no_fields",
                404: "provider_not_found",
                409: "provider_identifier_taken",
            }
        },
    )
    async def update_provider(
        self,
        request: Request,
        zone_id: str,
        provider_id: str,
        services: Services,
        data: ProviderPatch,
    ) -> Provider:
        """Partial update; mentioned secrets are replaced (``null`` removes), others kept."""
        changes = changes_of(data)
        async with services.db.transaction() as conn:
            return await providers.update_provider(
                conn, services.kek, zone_id, provider_id, changes, actor=actor_id(request)
            )

    @delete("/{provider_id:str}", status_code=204, opt={"errors": {404: "provider_not_found"}})
    async def archive_provider(
        self, request: Request, zone_id: str, provider_id: str, services: Services
    ) -> None:
        """Archive; refused (409) while an active resource uses the provider."""
        async with services.db.transaction() as conn:
            await providers.archive_provider(conn, zone_id, provider_id, actor=actor_id(request))
