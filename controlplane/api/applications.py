"""Applications: ``/v1/zones/{zoneId}/applications``, Dynamic Client Registration included."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide

from controlplane.api.common import actor_id, services_of
from controlplane.fields import changes_of
from controlplane.registry import applications
from controlplane.registry.applications import (
    Application,
    ApplicationCreate,
    ApplicationPatch,
    ApplicationRegister,
    hash_secret,
    prepare_secret,
)
from controlplane.services import Services


class ApplicationController(Controller):
    """The six application routes."""

    path = "/v1/zones/{zone_id:str}/applications"
    tags = ["applications"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_applications(self, zone_id: str, services: Services) -> list[Application]:
        """Active applications of the zone, oldest first."""
        async with services.db.transaction() as conn:
            return await applications.list_applications(conn, zone_id)

    @post("/")
    async def create_application(
        self, request: Request, zone_id: str, services: Services, data: ApplicationCreate
    ) -> Application:
        """Create an application (201); a generated secret is returned once."""
        secret_hash, generated = await prepare_secret(
            services.hasher, data.credential_type, data.client_secret
        )
        async with services.db.transaction() as conn:
            return await applications.create_application(
                conn,
                zone_id,
                secret_hash=secret_hash,
                generated=generated,
                actor=actor_id(request),
                name=data.name,
                registration_method=data.registration_method,
                credential_type=data.credential_type,
                traits=data.traits,
                consent=data.consent,
            )

    @post(
        "/register",
        opt={
            "errors": {
                403: "dcr_disabled",
                429: ("dcr_rate_limit_exceeded", "dcr_limit_exceeded"),
            }
        },
    )
    async def register_application(
        self, request: Request, zone_id: str, services: Services, data: ApplicationRegister
    ) -> Application:
        """Dynamic Client Registration (201): zone must allow it; rate limit and cap apply."""
        async with services.db.transaction() as conn:
            await applications.admit_registration(conn, zone_id, services.settings.dcr_rate_limit)
        secret_hash, generated = await prepare_secret(
            services.hasher, data.credential_type, data.client_secret
        )
        async with services.db.transaction() as conn:
            return await applications.create_application(
                conn,
                zone_id,
                secret_hash=secret_hash,
                generated=generated,
                actor=actor_id(request),
                name=data.name,
                registration_method="dcr",
                credential_type=data.credential_type,
                traits=data.traits,
                expires_in=data.expires_in,
            )

    @get("/{app_id:str}", opt={"errors": {404: "application_not_found"}})
    async def get_application(self, zone_id: str, app_id: str, services: Services) -> Application:
        """One active application."""
        async with services.db.transaction() as conn:
            return await applications.get_application(conn, zone_id, app_id)

    @patch(
        "/{app_id:str}",
        opt={
            "errors": {
                400: "no_fields",
                404: "application_not_found",
                409: "app_referenced_by_active_policy",
            }
        },
    )
    async def update_application(
        self,
        request: Request,
        zone_id: str,
        app_id: str,
        services: Services,
        data: ApplicationPatch,
    ) -> Application:
        """Partial update; a new ``client_secret`` is rehashed."""
        changes = changes_of(data)
        given_secret = changes.pop("client_secret", None)
        secret_hash = (
            None if given_secret is None else await hash_secret(services.hasher, given_secret)
        )
        async with services.db.transaction() as conn:
            return await applications.update_application(
                conn,
                services.hasher,
                zone_id,
                app_id,
                changes,
                secret_hash=secret_hash,
                actor=actor_id(request),
            )

    @delete("/{app_id:str}", status_code=204, opt={"errors": {404: "application_not_found"}})
    async def archive_application(
        self, request: Request, zone_id: str, app_id: str, services: Services
    ) -> None:
        """Archive (soft delete); an expired application is already gone (404)."""
        async with services.db.transaction() as conn:
            await applications.archive_application(conn, zone_id, app_id, actor=actor_id(request))
