"""Applications of a zone, Dynamic Client Registration included.

An application is active while it is neither archived nor expired (view
``active_applications``); every read, update and count sees only active ones. An
application is referenced by the zone's active policies when its id appears
(case-insensitively) in the content of a policy version of the zone's active or shadow
policy-set version (``sql/0003_policies.sql``): it cannot become ``public`` then.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row, parse_uuid
from controlplane.errors import Conflict, Forbidden, Invalid, NotFound
from controlplane.fields import AT_LEAST_ONE_FIELD
from controlplane.keys.crypto import SecretHasher, generate_client_secret
from controlplane.registry.dcr_limits import check_dcr_capacity, take_rate_slot
from controlplane.registry.zones import require_zone

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
ClientSecret = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
CredentialType = Literal["token", "password", "public-key", "url", "public"]
RegistrationMethod = Literal["managed", "dcr"]
ExpiresIn = Annotated[int, msgspec.Meta(ge=1, le=100 * 365 * 86_400)]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType

# Credential types that authenticate with a client secret: one is generated when none is given.
SECRET_CREDENTIAL_TYPES = frozenset({"token", "password"})


class Application(msgspec.Struct, omit_defaults=True):
    """Application object; ``client_secret`` only in the response that generated it."""

    id: str
    zone_id: str
    name: str
    registration_method: str
    credential_type: str
    traits: list[str]
    consent: bool
    created_at: datetime
    expires_at: datetime | None = None
    client_secret: str | None = None


class ApplicationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/applications body."""

    name: NonEmpty
    registration_method: RegistrationMethod
    credential_type: CredentialType = "public"
    client_secret: ClientSecret | None = None
    traits: list[NonEmpty] = []
    consent: bool = False

    example: ClassVar[dict[str, Any]] = {
        "name": "Support agent",
        "registration_method": "managed",
        "credential_type": "token",
        "traits": ["agent"],
    }


class ApplicationRegister(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/applications/register (DCR) body."""

    name: NonEmpty
    credential_type: CredentialType = "public"
    client_secret: ClientSecret | None = None
    traits: list[NonEmpty] = []
    expires_in: ExpiresIn | None = None

    example: ClassVar[dict[str, Any]] = {
        "name": "CLI",
        "credential_type": "public",
        "expires_in": 3600,
    }


class ApplicationPatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH …/applications/{id} body; ``registration_method`` may only repeat the stored one."""

    name: NonEmpty | Unset = UNSET
    registration_method: RegistrationMethod | Unset = UNSET
    credential_type: CredentialType | Unset = UNSET
    client_secret: ClientSecret | Unset = UNSET
    traits: list[NonEmpty] | Unset = UNSET
    consent: bool | Unset = UNSET

    example: ClassVar[dict[str, Any]] = {"traits": ["agent", "internal"]}
    json_schema_extra: ClassVar[dict[str, Any]] = AT_LEAST_ONE_FIELD


APPLICATION_COLUMNS = (
    "id, zone_id, name, registration_method, credential_type, traits, consent,"
    " created_at, expires_at"
)


def to_application(row: dict[str, Any], client_secret: str | None = None) -> Application:
    """Row to response object (``client_secret`` only when it was just generated)."""
    return Application(
        id=str(row["id"]),
        zone_id=row["zone_id"],
        name=row["name"],
        registration_method=row["registration_method"],
        credential_type=row["credential_type"],
        traits=list(row["traits"]),
        consent=row["consent"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        client_secret=client_secret,
    )


async def hash_secret(hasher: SecretHasher, secret: str) -> str:
    """argon2id hash of a client secret, computed off the event loop."""
    return await asyncio.to_thread(hasher.hash, secret)


async def prepare_secret(
    hasher: SecretHasher, credential_type: str, given: str | None
) -> tuple[str | None, str | None]:
    """``(hash to store, generated secret to return once)`` for a new application."""
    if given is None and credential_type in SECRET_CREDENTIAL_TYPES:
        generated = generate_client_secret()
        return await hash_secret(hasher, generated), generated
    if given is None:
        return None, None
    return await hash_secret(hasher, given), None


async def insert_application(
    conn: Conn,
    zone_id: str,
    *,
    name: str,
    registration_method: str,
    credential_type: str,
    secret_hash: str | None,
    traits: list[str],
    consent: bool = False,
    expires_in: int | None = None,
) -> dict[str, Any]:
    """Insert an application (the DCR cap is checked for ``dcr``) and return its row."""
    if registration_method == "dcr":
        await check_dcr_capacity(conn, zone_id)
    cur = await conn.execute(
        "INSERT INTO applications (zone_id, id, name, registration_method, credential_type,"
        " client_secret_hash, traits, consent, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s,"
        " %s, now() + make_interval(secs => %s)) RETURNING " + APPLICATION_COLUMNS,
        (
            zone_id,
            uuid7(),
            name,
            registration_method,
            credential_type,
            secret_hash,
            traits,
            consent,
            expires_in,
        ),
    )
    row = await one_row(cur)
    return row


async def application_referenced_by_active_policy(conn: Conn, zone_id: str, app_id: UUID) -> bool:
    """True when an active or shadow policy version of the zone mentions ``app_id``."""
    cur = await conn.execute(
        "SELECT EXISTS ("
        " SELECT 1 FROM zone_policy_state s"
        " JOIN policy_set_version_entries e ON e.zone_id = s.zone_id"
        "  AND e.policy_set_version_id IN (s.active_version_id, s.shadow_version_id)"
        " JOIN policy_versions v ON v.zone_id = e.zone_id AND v.id = e.policy_version_id"
        " WHERE s.zone_id = %s AND strpos(lower(v.content), %s) > 0"
        ") AS referenced",
        (zone_id, str(app_id).lower()),
    )
    row = await one_row(cur)
    return bool(row["referenced"])


async def require_application(
    conn: Conn, zone_id: str, app_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The active application row (``has_secret`` added), or NotFound application_not_found."""
    app_uuid = parse_uuid(app_id, "application_not_found")
    cur = await conn.execute(
        f"SELECT {APPLICATION_COLUMNS}, client_secret_hash IS NOT NULL AS has_secret"
        " FROM active_applications WHERE zone_id = %s AND id = %s"
        + (" FOR UPDATE" if lock else ""),
        (zone_id, app_uuid),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("application_not_found")
    return row


def _audit_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "application_id": str(row["id"]),
        "name": row["name"],
        "registration_method": row["registration_method"],
        "credential_type": row["credential_type"],
        "traits": list(row["traits"]),
        "consent": row["consent"],
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
    }


async def list_applications(conn: Conn, zone_id: str) -> list[Application]:
    """Active applications of the zone, oldest first."""
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        f"SELECT {APPLICATION_COLUMNS} FROM active_applications WHERE zone_id = %s"
        " ORDER BY created_at, id",
        (zone_id,),
    )
    return [to_application(row) for row in await cur.fetchall()]


async def admit_registration(conn: Conn, zone_id: str, rate_limit: int) -> None:
    """Let one DCR request in: Forbidden dcr_disabled unless the zone allows DCR,
    TooManyRequests past the rate limit. Run it in a transaction of its own, committed
    before the registration (``controlplane.registry.dcr_limits.take_rate_slot``)."""
    zone = await require_zone(conn, zone_id)
    if not zone["dcr_enabled"]:
        raise Forbidden("dcr_disabled", "the zone does not allow DCR")
    await take_rate_slot(conn, zone_id, rate_limit)


async def create_application(
    conn: Conn,
    zone_id: str,
    *,
    secret_hash: str | None,
    generated: str | None,
    actor: str | None,
    **fields: Any,
) -> Application:
    """Insert an application with its secret hash (``prepare_secret``, computed before the
    transaction) and its ``application.created`` event; a generated secret is in the
    returned object once. ``fields`` are ``insert_application``'s."""
    await require_zone(conn, zone_id)
    row = await insert_application(conn, zone_id, secret_hash=secret_hash, **fields)
    metadata = _audit_fields(row)
    if generated is not None:
        metadata["generated"] = ["client_secret"]
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="application.created",
        actor_id=actor,
        metadata=metadata,
    )
    return to_application(row, generated)


async def get_application(conn: Conn, zone_id: str, app_id: str) -> Application:
    """One active application."""
    await require_zone(conn, zone_id)
    return to_application(await require_application(conn, zone_id, app_id))


async def update_application(
    conn: Conn,
    hasher: SecretHasher,
    zone_id: str,
    app_id: str,
    changes: dict[str, Any],
    *,
    secret_hash: str | None,
    actor: str | None,
) -> Application:
    """Apply ``changes`` (without ``client_secret``: its hash is ``secret_hash``, computed
    before the transaction) and record ``application.updated``. A secret credential type
    without a secret gets a generated one, returned once."""
    generated: str | None = None
    # A downgrade to public is checked against the active policies: the zone lock makes it
    # wait for an activation in flight and see what that activation made.
    await require_zone(conn, zone_id, lock=changes.get("credential_type") == "public")
    current = await require_application(conn, zone_id, app_id, lock=True)
    method = changes.pop("registration_method", current["registration_method"])
    if method != current["registration_method"]:
        raise Invalid.body("registration_method cannot be changed", ["registration_method"])
    new_type = changes.get("credential_type", current["credential_type"])
    if (
        new_type == "public"
        and current["credential_type"] != "public"
        and await application_referenced_by_active_policy(conn, zone_id, current["id"])
    ):
        raise Conflict(
            "app_referenced_by_active_policy", "an active policy references this application"
        )
    if secret_hash is None and not current["has_secret"]:
        secret_hash, generated = await prepare_secret(hasher, new_type, None)
    row = await _apply_patch(conn, zone_id, current["id"], changes, secret_hash)
    changed = sorted([*changes, *(["client_secret"] if secret_hash else [])])
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="application.updated",
        actor_id=actor,
        metadata={"application_id": str(row["id"]), "changes": changes, "changed": changed},
    )
    return to_application(row, generated)


async def _apply_patch(
    conn: Conn, zone_id: str, app_uuid: UUID, changes: dict[str, Any], secret_hash: str | None
) -> dict[str, Any]:
    columns = dict(changes)
    if secret_hash is not None:
        columns["client_secret_hash"] = secret_hash
    # Only a repeated registration_method: nothing to set but updated_at (by the trigger).
    assignments = ", ".join(f"{column} = %s" for column in columns) or "name = name"
    cur = await conn.execute(
        f"UPDATE applications SET {assignments} WHERE zone_id = %s AND id = %s"
        f" RETURNING {APPLICATION_COLUMNS}",
        (*columns.values(), zone_id, app_uuid),
    )
    row = await one_row(cur)
    return row


async def archive_application(conn: Conn, zone_id: str, app_id: str, *, actor: str | None) -> None:
    """Archive (soft delete); an expired application is already gone (NotFound)."""
    await require_zone(conn, zone_id)
    current = await require_application(conn, zone_id, app_id, lock=True)
    await conn.execute(
        "UPDATE applications SET archived_at = now() WHERE zone_id = %s AND id = %s",
        (zone_id, current["id"]),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="application.archived",
        actor_id=actor,
        metadata={"application_id": str(current["id"])},
    )
