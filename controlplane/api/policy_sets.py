"""Policy sets: ``/v1/zones/{zoneId}/policy-sets`` — versioned manifests and activation."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import Provide
from uuid6 import uuid7

from controlplane.api.common import actor_id, parse_uuid, require_zone, services_of
from controlplane.api.policies import DEFAULT_SCHEMA_VERSION, OptionalText, Text, contract_error
from controlplane.audit.events import record_event
from controlplane.db.pool import Conn
from controlplane.http.errors import ApiError, Issue
from controlplane.outbox.enqueue import TOPIC_POLICY_INVALIDATE, enqueue
from controlplane.pdp.contract import RegoContractError
from controlplane.pdp.runtime import (
    PdpRuntime,
    SetVersionRow,
    ZoneState,
    fetch_set_version,
    runtime_of,
)
from controlplane.policies.manifest import manifest_sha256
from controlplane.services import Services

MAX_MANIFEST_ENTRIES = 256


class PolicySet(msgspec.Struct):
    """Policy set object (the zone's active/shadow ids when this set owns the active one)."""

    id: str
    zone_id: str
    name: str
    description: str | None
    created_at: datetime
    active_version_id: str | None
    shadow_version_id: str | None


class ManifestEntry(msgspec.Struct, forbid_unknown_fields=True):
    """One manifest entry."""

    policy_version_id: UUID


class PolicySetVersion(msgspec.Struct):
    """PolicySetVersion object."""

    id: str
    policy_set_id: str
    version: int
    manifest_sha256: str
    schema_version: str
    created_at: datetime


class PolicySetVersionWithManifest(PolicySetVersion):
    """A version in ``GET …/policy-sets/{id}``: the object plus its manifest, in order."""

    manifest: list[ManifestEntry]


class PolicySetDetail(PolicySet):
    """``GET …/policy-sets/{id}``: the set with its versions, ascending."""

    versions: list[PolicySetVersionWithManifest]


class PolicySetCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policy-sets body."""

    name: Text
    description: OptionalText | None = None


class PolicySetVersionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policy-sets/{id}/versions body."""

    manifest: Annotated[
        list[ManifestEntry], msgspec.Meta(min_length=1, max_length=MAX_MANIFEST_ENTRIES)
    ]
    schema_version: Text = DEFAULT_SCHEMA_VERSION


class ActivateBody(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policy-sets/{id}/activate body."""

    version_id: UUID
    shadow_version_id: UUID | None = None


class Activation(msgspec.Struct):
    """202 body of an activation."""

    activated: bool
    version_id: str
    shadow_version_id: str | None
    outbox_id: str


_SET_SELECT = (
    "SELECT s.id, s.zone_id, s.name, s.description, s.created_at,"
    " CASE WHEN av.policy_set_id = s.id THEN st.active_version_id END AS active_version_id,"
    " CASE WHEN av.policy_set_id = s.id THEN st.shadow_version_id END AS shadow_version_id"
    " FROM policy_sets s"
    " LEFT JOIN zone_policy_state st ON st.zone_id = s.zone_id"
    " LEFT JOIN policy_set_versions av ON av.zone_id = st.zone_id AND av.id = st.active_version_id"
    " WHERE s.zone_id = %s AND s.archived_at IS NULL"
)
_VERSION_COLUMNS = "id, policy_set_id, version, manifest_sha256, schema_version, created_at"


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def to_set(row: dict[str, Any]) -> PolicySet:
    """Row to PolicySet."""
    return PolicySet(
        id=str(row["id"]),
        zone_id=row["zone_id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        active_version_id=_str(row["active_version_id"]),
        shadow_version_id=_str(row["shadow_version_id"]),
    )


def to_set_version(row: dict[str, Any]) -> PolicySetVersion:
    """Row to PolicySetVersion."""
    return PolicySetVersion(
        id=str(row["id"]),
        policy_set_id=str(row["policy_set_id"]),
        version=row["version"],
        manifest_sha256=row["manifest_sha256"],
        schema_version=row["schema_version"],
        created_at=row["created_at"],
    )


async def require_set(conn: Conn, zone_id: str, set_id: str, *, lock: bool = False) -> UUID:
    """The id of an active set of the zone (row locked on request); 404 policy_set_not_found."""
    uuid = parse_uuid(set_id, "policy_set_not_found")
    cur = await conn.execute(
        "SELECT id FROM policy_sets WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        (zone_id, uuid),
    )
    if await cur.fetchone() is None:
        raise ApiError(404, "policy_set_not_found")
    return uuid


def _duplicate_issues(manifest: list[ManifestEntry]) -> list[Issue]:
    seen: set[UUID] = set()
    issues = []
    for index, entry in enumerate(manifest):
        if entry.policy_version_id in seen:
            issues.append(
                Issue(
                    path=["manifest", index, "policy_version_id"],
                    message=f"duplicate policy version id {entry.policy_version_id}",
                )
            )
        seen.add(entry.policy_version_id)
    return issues


def _contract_violation(contents: list[tuple[str, str]]) -> str | None:
    """The first contract violation among ``(version_id, content)`` pairs, or None."""
    for version_id, content in contents:
        error = contract_error(content, f"{version_id}.rego")
        if error is not None:
            return error.message
    return None


def _archived_entries(row: SetVersionRow) -> list[str]:
    return [e.policy_version_id for e in row.entries if e.policy_archived]


async def create_set_in(
    conn: Conn,
    *,
    zone_id: str,
    name: str,
    description: str | None,
    actor: str | None,
    audit: bool = True,
) -> dict[str, Any]:
    """Insert a policy set (and, unless ``audit`` is false, its audit event) in the caller's
    transaction."""
    cur = await conn.execute(
        "INSERT INTO policy_sets (zone_id, id, name, description, created_by)"
        " VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id, zone_id, name, description, created_at,"
        " NULL::uuid AS active_version_id, NULL::uuid AS shadow_version_id",
        (zone_id, uuid7(), name, description, actor),
    )
    row = await cur.fetchone()
    assert row is not None
    if not audit:
        return row
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="policy_set.created",
        actor_id=actor,
        metadata={"policy_set_id": str(row["id"]), "name": name},
    )
    return row


async def create_set_version_in(
    conn: Conn,
    *,
    zone_id: str,
    set_uuid: UUID,
    wanted: list[UUID],
    schema_version: str,
    actor: str | None,
    audit: bool = True,
) -> dict[str, Any]:
    """Insert the next version of a (locked) set from policy version ids, checking the
    manifest rules (404 policy_version_not_found, 422 invalid_policy_contract); audited
    unless ``audit`` is false."""
    cur = await conn.execute(
        "SELECT v.id, v.content, v.content_sha256 FROM policy_versions v"
        " JOIN policies p ON p.zone_id = v.zone_id AND p.id = v.policy_id"
        " WHERE v.zone_id = %s AND v.id = ANY(%s::uuid[]) AND p.archived_at IS NULL",
        (zone_id, wanted),
    )
    found = {row["id"]: row for row in await cur.fetchall()}
    missing = [version_id for version_id in wanted if version_id not in found]
    if missing:
        raise ApiError(
            404,
            "policy_version_not_found",
            f"{missing[0]} is not a version of an active policy of this zone",
        )
    violation = await asyncio.to_thread(
        _contract_violation, [(str(v), found[v]["content"]) for v in wanted]
    )
    if violation is not None:
        raise ApiError(422, "invalid_policy_contract", violation)
    digest = manifest_sha256((v, found[v]["content_sha256"]) for v in wanted)
    cur = await conn.execute(
        "SELECT coalesce(max(version), 0) + 1 AS next FROM policy_set_versions"
        " WHERE zone_id = %s AND policy_set_id = %s",
        (zone_id, set_uuid),
    )
    next_row = await cur.fetchone()
    assert next_row is not None
    version_id = uuid7()
    cur = await conn.execute(
        "INSERT INTO policy_set_versions (zone_id, id, policy_set_id, version,"
        " manifest_sha256, schema_version, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_VERSION_COLUMNS}",
        (
            zone_id,
            version_id,
            set_uuid,
            next_row["next"],
            digest,
            schema_version,
            actor,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "INSERT INTO policy_set_version_entries"
        " (zone_id, policy_set_version_id, position, policy_version_id)"
        " SELECT %s, %s, ordinality - 1, id"
        " FROM unnest(%s::uuid[]) WITH ORDINALITY AS m(id, ordinality)",
        (zone_id, version_id, wanted),
    )
    if not audit:
        return row
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="policy_set_version.created",
        actor_id=actor,
        metadata={
            "policy_set_id": str(set_uuid),
            "policy_set_version_id": str(version_id),
            "version": row["version"],
            "manifest_sha256": digest,
            "manifest": [str(v) for v in wanted],
        },
    )
    return row


async def activate_in(
    conn: Conn,
    runtime: PdpRuntime,
    *,
    zone_id: str,
    set_uuid: UUID,
    version_id: UUID,
    shadow_version_id: UUID | None,
    actor: str | None,
    audit: bool = True,
) -> tuple[Activation, ZoneState]:
    """Make ``version_id`` (of set ``set_uuid``) the zone's active version, with an optional
    shadow, and enqueue the invalidation, in the caller's transaction (the zone row locked).
    Install the returned ZoneState in the runtime only after the commit."""
    active = await fetch_set_version(conn, zone_id, version_id, policy_set_id=set_uuid)
    if active is None:
        raise ApiError(404, "version_not_found")
    shadow = None
    if shadow_version_id is not None:
        shadow = await fetch_set_version(conn, zone_id, shadow_version_id, live_sets_only=True)
        if shadow is None:
            raise ApiError(404, "shadow_version_not_found")
    archived = _archived_entries(active) + (_archived_entries(shadow) if shadow else [])
    if archived:
        raise ApiError(
            409,
            "referenced_policy_version_missing",
            f"the policy of version {archived[0]} was archived",
        )
    try:
        compiled_active = await runtime.compile(conn, zone_id, active, check=True)
        compiled_shadow = (
            await runtime.compile(conn, zone_id, shadow, check=True) if shadow else None
        )
    except RegoContractError as exc:
        raise ApiError(422, "invalid_policy_contract", exc.message) from None
    cur = await conn.execute(
        "SELECT active_version_id, shadow_version_id FROM zone_policy_state WHERE zone_id = %s",
        (zone_id,),
    )
    previous = await cur.fetchone() or {}
    cur = await conn.execute(
        "INSERT INTO zone_policy_state (zone_id, active_version_id, shadow_version_id,"
        " activated_by) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (zone_id) DO UPDATE SET"
        " active_version_id = EXCLUDED.active_version_id,"
        " shadow_version_id = EXCLUDED.shadow_version_id,"
        " generation = zone_policy_state.generation + 1,"
        " activated_by = EXCLUDED.activated_by, activated_at = now()"
        " RETURNING generation",
        (zone_id, version_id, shadow_version_id, actor),
    )
    state = await cur.fetchone()
    assert state is not None
    shadow_id = _str(shadow_version_id)
    announced = {
        "zone_id": zone_id,
        "policy_set_id": str(set_uuid),
        "version_id": str(version_id),
        "shadow_version_id": shadow_id,
        "manifest_sha256": active.manifest_sha256,
        "generation": state["generation"],
    }
    outbox_id = await enqueue(
        conn, zone_id=zone_id, topic=TOPIC_POLICY_INVALIDATE, payload=announced
    )
    if audit:
        await record_event(
            conn,
            zone_id=zone_id,
            event_type="policy_set.activated",
            actor_id=actor,
            metadata={
                **announced,
                "outbox_id": outbox_id,
                "previous_version_id": _str(previous.get("active_version_id")),
                "previous_shadow_version_id": _str(previous.get("shadow_version_id")),
            },
        )
    state_now = ZoneState(zone_id, state["generation"], compiled_active, compiled_shadow)
    activation = Activation(
        activated=True,
        version_id=str(version_id),
        shadow_version_id=shadow_id,
        outbox_id=outbox_id,
    )
    return activation, state_now


class PolicySetController(Controller):
    """Create, list, read, version, activate and archive policy sets."""

    path = "/v1/zones/{zone_id:str}/policy-sets"
    tags = ["policy-sets"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/")
    async def list_sets(self, zone_id: str, services: Services) -> list[PolicySet]:
        """Active policy sets, oldest first."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(_SET_SELECT + " ORDER BY s.created_at, s.id", (zone_id,))
            return [to_set(row) for row in await cur.fetchall()]

    @post("/")
    async def create_set(
        self, request: Request, zone_id: str, services: Services, data: PolicySetCreate
    ) -> PolicySet:
        """Create a policy set (201); it has no version until one is posted."""
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            row = await create_set_in(
                conn, zone_id=zone_id, name=data.name, description=data.description, actor=actor
            )
        return to_set(row)

    @get("/{set_id:str}")
    async def get_set(self, zone_id: str, set_id: str, services: Services) -> PolicySetDetail:
        """The set with every version (and its manifest), ascending."""
        uuid = parse_uuid(set_id, "policy_set_not_found")
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(_SET_SELECT + " AND s.id = %s", (zone_id, uuid))
            row = await cur.fetchone()
            if row is None:
                raise ApiError(404, "policy_set_not_found")
            cur = await conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM policy_set_versions"
                " WHERE zone_id = %s AND policy_set_id = %s ORDER BY version",
                (zone_id, uuid),
            )
            versions = await cur.fetchall()
            cur = await conn.execute(
                "SELECT e.policy_set_version_id, e.policy_version_id"
                " FROM policy_set_version_entries e JOIN policy_set_versions v"
                "  ON v.zone_id = e.zone_id AND v.id = e.policy_set_version_id"
                " WHERE v.zone_id = %s AND v.policy_set_id = %s ORDER BY e.position",
                (zone_id, uuid),
            )
            manifests: dict[UUID, list[ManifestEntry]] = {}
            for entry in await cur.fetchall():
                manifests.setdefault(entry["policy_set_version_id"], []).append(
                    ManifestEntry(policy_version_id=entry["policy_version_id"])
                )
        base = to_set(row)
        return PolicySetDetail(
            **msgspec.structs.asdict(base),
            versions=[
                PolicySetVersionWithManifest(
                    **msgspec.structs.asdict(to_set_version(v)), manifest=manifests.get(v["id"], [])
                )
                for v in versions
            ],
        )

    @post("/{set_id:str}/versions")
    async def create_version(
        self,
        request: Request,
        zone_id: str,
        set_id: str,
        services: Services,
        data: PolicySetVersionCreate,
    ) -> PolicySetVersion:
        """Add the next immutable set version from a manifest (201)."""
        duplicates = _duplicate_issues(data.manifest)
        if duplicates:
            raise ApiError(400, "invalid_body", issues=duplicates)
        wanted = [entry.policy_version_id for entry in data.manifest]
        actor = actor_id(request)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            set_uuid = await require_set(conn, zone_id, set_id, lock=True)
            row = await create_set_version_in(
                conn,
                zone_id=zone_id,
                set_uuid=set_uuid,
                wanted=wanted,
                schema_version=data.schema_version,
                actor=actor,
            )
        return to_set_version(row)

    @post("/{set_id:str}/activate", status_code=202)
    async def activate(
        self, request: Request, zone_id: str, set_id: str, services: Services, data: ActivateBody
    ) -> Activation:
        """Make a version of this set the zone's single active version (optionally with a
        shadow version of any live set of the zone); the invalidation goes through the outbox."""
        actor = actor_id(request)
        runtime = runtime_of(services)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id, lock=True)
            set_uuid = await require_set(conn, zone_id, set_id)
            activation, state = await activate_in(
                conn,
                runtime,
                zone_id=zone_id,
                set_uuid=set_uuid,
                version_id=data.version_id,
                shadow_version_id=data.shadow_version_id,
                actor=actor,
            )
        runtime.install(state)
        return activation

    @delete("/{set_id:str}", status_code=204)
    async def archive_set(
        self, request: Request, zone_id: str, set_id: str, services: Services
    ) -> None:
        """Archive the set. A zone whose active version belongs to it keeps evaluating it."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            set_uuid = await require_set(conn, zone_id, set_id, lock=True)
            await conn.execute(
                "UPDATE policy_sets SET archived_at = now() WHERE zone_id = %s AND id = %s",
                (zone_id, set_uuid),
            )
            await record_event(
                conn,
                zone_id=zone_id,
                event_type="policy_set.archived",
                actor_id=actor_id(request),
                metadata={"policy_set_id": str(set_uuid)},
            )
