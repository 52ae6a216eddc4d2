"""Zones: ``/v1/zones``."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from uuid6 import uuid7

from controlplane.api.common import actor_id, services_of
from controlplane.fields import changes_of
from controlplane.registry import zones
from controlplane.registry.zones import Zone, ZoneCreate, ZonePatch
from controlplane.services import Services


class ZoneController(Controller):
    """The five zone routes."""

    path = "/v1/zones"
    tags = ["zones"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/", opt={"scope": "global"})
    async def list_zones(self, services: Services) -> list[Zone]:
        """List active zones."""
        async with services.db.transaction() as conn:
            return await zones.list_zones(conn)

    @post("/", opt={"scope": "global", "errors": {400: "invalid_zone"}})
    async def create_zone(self, request: Request, services: Services, data: ZoneCreate) -> Zone:
        """Create a zone (201)."""
        async with services.db.transaction() as conn:
            return await zones.create_zone(
                conn, services.kek, str(uuid7()), data, actor=actor_id(request)
            )

    @get("/{zone_id:str}")
    async def get_zone(self, zone_id: str, services: Services) -> Zone:
        """One zone."""
        async with services.db.transaction() as conn:
            return await zones.get_zone(conn, zone_id)

    @patch("/{zone_id:str}", opt={"errors": {400: ("no_fields", "invalid_zone")}})
    async def update_zone(
        self, request: Request, zone_id: str, services: Services, data: ZonePatch
    ) -> Zone:
        """Partial update; at least one field."""
        changes = changes_of(data)
        async with services.db.transaction() as conn:
            return await zones.update_zone(conn, zone_id, changes, actor=actor_id(request))

    @delete("/{zone_id:str}", status_code=204)
    async def archive_zone(self, request: Request, zone_id: str, services: Services) -> None:
        """Archive (soft delete)."""
        async with services.db.transaction() as conn:
            await zones.archive_zone(conn, zone_id, actor=actor_id(request))
        services.runtime.forget(zone_id)  # other processes: the caracal_zones NOTIFY
