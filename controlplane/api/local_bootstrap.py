"""Local bootstrap: ``POST /v1/local/bootstrap`` (development only, global scope).

One transaction creates the zone ``CARACAL_LOCAL_ZONE_ID``, an application with a generated
client secret, the resource ``resource://example`` (scope ``read``), a policy from the
``role-based`` template and an activated policy set. Later calls return the same ids
without a secret; ``force: true`` regenerates the secret and reseals the signing key. The
route exists only when ``CARACAL_LOCAL_BOOTSTRAP_ENABLED=true``.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec

from controlplane.api.common import actor_id, services_of
from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.errors import Conflict
from controlplane.keys.crypto import generate_client_secret
from controlplane.keys.zone_keys import reseal_signing_key
from controlplane.pdp.runtime import ZoneState
from controlplane.pdp.templates import get_template
from controlplane.policies.activation import activate_version
from controlplane.policies.policies import DEFAULT_SCHEMA_VERSION, insert_policy
from controlplane.policies.policy_sets import insert_set, insert_set_version
from controlplane.registry.applications import hash_secret, insert_application, prepare_secret
from controlplane.registry.resources import insert_resource
from controlplane.registry.zones import MAX_SLUG_LENGTH, ZoneCreate, derive_slug, insert_zone
from controlplane.services import Services

RESOURCE_IDENTIFIER = "resource://example"
SCOPE = "read"
TEMPLATE_ID = "role-based"
APPLICATION_NAME = "Local development application"
POLICY_SET_NAME = "local"


class BootstrapBody(msgspec.Struct, forbid_unknown_fields=True):
    """Request body (optional)."""

    force: bool = False

    example: ClassVar[dict[str, Any]] = {"force": False}


class BootstrapResult(msgspec.Struct, omit_defaults=True):
    """What the bootstrap made; ``app_client_secret`` only when it was (re)generated."""

    zone_id: str
    app_id: str
    application_id: str
    resource: str
    scope: str
    rotated: bool
    signing_key_resealed: bool
    app_client_secret: str | msgspec.UnsetType = msgspec.UNSET


def _result(zone_id: str, app_id: str, *, forced: bool) -> BootstrapResult:
    """The response for the bootstrap zone (``force`` rotated the secret and the key)."""
    return BootstrapResult(
        zone_id=zone_id,
        app_id=app_id,
        application_id=app_id,
        resource=RESOURCE_IDENTIFIER,
        scope=SCOPE,
        rotated=forced,
        signing_key_resealed=forced,
    )


async def _free_slug(conn: Conn, slug: str) -> str:
    """``slug``, or, when an active zone already has it, ``slug`` with a random suffix (the
    bootstrap must not fail because a zone of the same name exists)."""
    if not slug:
        return slug
    cur = await conn.execute("SELECT 1 FROM zones WHERE slug = %s AND archived_at IS NULL", (slug,))
    if await cur.fetchone() is None:
        return slug
    return f"{slug[: MAX_SLUG_LENGTH - 5]}-{secrets.token_hex(2)}"


async def _new_application(
    conn: Conn, services: Services, zone_id: str
) -> tuple[dict[str, Any], str | None]:
    """The bootstrap application (a managed token client) and its generated secret."""
    secret_hash, secret = await prepare_secret(services.hasher, "token", None)
    application = await insert_application(
        conn,
        zone_id,
        name=APPLICATION_NAME,
        registration_method="managed",
        credential_type="token",
        secret_hash=secret_hash,
        traits=[],
    )
    return application, secret


async def _example_resource(conn: Conn, zone_id: str) -> dict[str, Any]:
    """The active ``resource://example`` of the zone, created when there is none."""
    cur = await conn.execute(
        "SELECT id FROM resources WHERE zone_id = %s AND identifier = %s AND archived_at IS NULL",
        (zone_id, RESOURCE_IDENTIFIER),
    )
    found = await cur.fetchone()
    if found is not None:
        return found
    return await insert_resource(
        conn, zone_id, identifier=RESOURCE_IDENTIFIER, scopes=[SCOPE], name="Example resource"
    )


async def _create(
    conn: Conn, services: Services, zone_id: str, actor: str
) -> tuple[BootstrapResult, ZoneState, dict[str, Any]]:
    """Create the zone and everything in it; return the result, the PDP state to install
    and the ids for the call's one audit event (the parts write no events of their own)."""
    slug = await _free_slug(conn, derive_slug(zone_id))
    await insert_zone(
        conn,
        services.kek,
        zone_id,
        ZoneCreate(name=f"Local ({zone_id})", slug=slug or msgspec.UNSET),
        local_bootstrap=True,
    )
    application, secret = await _new_application(conn, services, zone_id)
    resource = await _example_resource(conn, zone_id)
    template = get_template(TEMPLATE_ID)
    assert template is not None
    policy, version = await insert_policy(
        conn,
        zone_id=zone_id,
        name=TEMPLATE_ID,
        content=template.content,
        description=template.description,
        owner_type="customer",
        schema_version=DEFAULT_SCHEMA_VERSION,
        actor=actor,
        audit=False,
    )
    policy_set = await insert_set(
        conn,
        zone_id=zone_id,
        name=POLICY_SET_NAME,
        description="Created by the local bootstrap",
        actor=actor,
        audit=False,
    )
    set_version = await insert_set_version(
        conn,
        zone_id=zone_id,
        set_uuid=policy_set["id"],
        wanted=[version["id"]],
        schema_version=DEFAULT_SCHEMA_VERSION,
        actor=actor,
        audit=False,
    )
    activation, state = await activate_version(
        conn,
        services.runtime,
        zone_id=zone_id,
        set_uuid=policy_set["id"],
        version_id=set_version["id"],
        shadow_version_id=None,
        actor=actor,
        audit=False,
    )
    await conn.execute(
        "INSERT INTO local_bootstrap (zone_id, application_id, resource_id, policy_id,"
        " policy_set_id) VALUES (%s, %s, %s, %s, %s)",
        (zone_id, application["id"], resource["id"], policy["id"], policy_set["id"]),
    )
    result = _result(zone_id, str(application["id"]), forced=False)
    result.app_client_secret = secret or msgspec.UNSET
    created = {
        "slug": slug,
        "application_id": str(application["id"]),
        "resource_id": str(resource["id"]),
        "policy_id": str(policy["id"]),
        "policy_version_id": str(version["id"]),
        "policy_set_id": str(policy_set["id"]),
        "policy_set_version_id": str(set_version["id"]),
        "outbox_id": activation.outbox_id,
    }
    return result, state, created


async def _existing(
    conn: Conn, services: Services, zone_id: str, force: bool
) -> tuple[BootstrapResult, dict[str, Any]]:
    """The bootstrap state already there, its application and resource made again if they
    were archived; with ``force`` a new secret and signing key. Returns the result and what
    was remade (empty when nothing was)."""
    cur = await conn.execute(
        "SELECT b.application_id, b.resource_id,"
        " a.archived_at IS NULL AS application_live, r.archived_at IS NULL AS resource_live"
        " FROM local_bootstrap b"
        " JOIN applications a ON a.zone_id = b.zone_id AND a.id = b.application_id"
        " JOIN resources r ON r.zone_id = b.zone_id AND r.id = b.resource_id"
        " WHERE b.zone_id = %s",
        (zone_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise Conflict("zone_not_local_bootstrap", "the zone has no bootstrap record")
    remade: dict[str, Any] = {}
    application_id, secret = row["application_id"], None
    if not row["application_live"]:
        application, secret = await _new_application(conn, services, zone_id)
        application_id = remade["application_id"] = application["id"]
    elif force:
        secret = generate_client_secret()
        await conn.execute(
            "UPDATE applications SET client_secret_hash = %s WHERE zone_id = %s AND id = %s",
            (await hash_secret(services.hasher, secret), zone_id, application_id),
        )
    resource_id = row["resource_id"]
    if not row["resource_live"]:
        resource_id = remade["resource_id"] = (await _example_resource(conn, zone_id))["id"]
    if remade:
        await conn.execute(
            "UPDATE local_bootstrap SET application_id = %s, resource_id = %s WHERE zone_id = %s",
            (application_id, resource_id, zone_id),
        )
    if force:
        await reseal_signing_key(conn, services.kek, zone_id, services.settings.key_overlap_seconds)
    result = _result(zone_id, str(application_id), forced=force)
    result.app_client_secret = secret or msgspec.UNSET
    return result, {key: str(value) for key, value in remade.items()}


@post(
    "/v1/local/bootstrap",
    opt={"scope": "global", "errors": {409: "zone_not_local_bootstrap"}},
    responses={200: ResponseSpec(BootstrapResult, description="The zone already existed")},
    dependencies={"services": Provide(services_of, sync_to_thread=False)},
    tags=["local"],
)
async def local_bootstrap(
    request: Request[Any, Any, Any], services: Services, data: BootstrapBody | None = None
) -> Response[BootstrapResult]:
    """Create (201) or return (200) the local development zone; idempotent."""
    force = data.force if data is not None else False
    zone_id = services.settings.local_zone_id
    actor = actor_id(request)
    state: ZoneState | None = None
    async with services.db.transaction() as conn:
        # Concurrent first calls queue here: exactly one creates, the others then find it.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('caracal.local_bootstrap:' || %s, 0))",
            (zone_id,),
        )
        cur = await conn.execute(
            "SELECT local_bootstrap, archived_at FROM zones WHERE id = %s", (zone_id,)
        )
        zone = await cur.fetchone()
        if zone is not None and not zone["local_bootstrap"]:
            raise Conflict(
                "zone_not_local_bootstrap", f"zone {zone_id!r} was not made by bootstrap"
            )
        if zone is not None and zone["archived_at"] is not None:
            raise Conflict(
                "zone_not_local_bootstrap",
                f"the bootstrap zone {zone_id!r} was archived; set another CARACAL_LOCAL_ZONE_ID",
            )
        if zone is None:
            result, state, changed = await _create(conn, services, zone_id, actor)
            status, event_type = 201, "local.bootstrapped"
        else:
            result, changed = await _existing(conn, services, zone_id, force)
            status = 200
            event_type = "local.bootstrap_forced" if force else "local.bootstrap_repaired"
        if status == 201 or force or changed:  # one event for a call that changed anything
            await record_event(
                conn,
                zone_id=zone_id,
                event_type=event_type,
                actor_id=actor,
                metadata={
                    "application_id": result.application_id,
                    "rotated": result.rotated,
                    "signing_key_resealed": result.signing_key_resealed,
                    "created" if status == 201 else "remade": changed,
                },
            )
    if state is not None:
        services.runtime.install(state)
    return Response(result, status_code=status)
