"""Policy sets of a zone: versioned, immutable manifests of policy versions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row, parse_uuid
from controlplane.errors import Invalid, Issue, NotFound, Unprocessable
from controlplane.policies.manifest import manifest_sha256
from controlplane.policies.policies import (
    DEFAULT_SCHEMA_VERSION,
    OptionalText,
    Text,
    contract_error,
)
from controlplane.registry.zones import require_zone

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

    example: ClassVar[dict[str, Any]] = {"name": "default", "description": "Production rules"}


class PolicySetVersionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policy-sets/{id}/versions body."""

    manifest: Annotated[
        list[ManifestEntry],
        # Duplicates are refused in code (400 invalid_body naming each).
        msgspec.Meta(
            min_length=1,
            max_length=MAX_MANIFEST_ENTRIES,
            extra_json_schema={"uniqueItems": True},
        ),
    ]
    schema_version: Text = DEFAULT_SCHEMA_VERSION

    example: ClassVar[dict[str, Any]] = {
        "manifest": [{"policy_version_id": "0190f3c2-7b1e-7d3a-9c4e-2f6a8b1d5e70"}],
        "schema_version": DEFAULT_SCHEMA_VERSION,
    }


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
    """The id of an active set of the zone (row locked on request); NotFound
    policy_set_not_found."""
    uuid = parse_uuid(set_id, "policy_set_not_found")
    cur = await conn.execute(
        "SELECT id FROM policy_sets WHERE zone_id = %s AND id = %s AND archived_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        (zone_id, uuid),
    )
    if await cur.fetchone() is None:
        raise NotFound("policy_set_not_found")
    return uuid


def check_manifest(manifest: list[ManifestEntry]) -> None:
    """Invalid invalid_body when a policy version appears twice in ``manifest``."""
    duplicates = _duplicate_issues(manifest)
    if duplicates:
        raise Invalid("invalid_body", issues=duplicates)


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


async def insert_set(
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
    row = await one_row(cur)
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


async def insert_set_version(
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
    manifest rules (NotFound policy_version_not_found, Unprocessable
    invalid_policy_contract); audited
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
        raise NotFound(
            "policy_version_not_found",
            f"{missing[0]} is not a version of an active policy of this zone",
        )
    violation = await asyncio.to_thread(
        _contract_violation, [(str(v), found[v]["content"]) for v in wanted]
    )
    if violation is not None:
        raise Unprocessable("invalid_policy_contract", violation)
    digest = manifest_sha256((v, found[v]["content_sha256"]) for v in wanted)
    cur = await conn.execute(
        "SELECT coalesce(max(version), 0) + 1 AS next FROM policy_set_versions"
        " WHERE zone_id = %s AND policy_set_id = %s",
        (zone_id, set_uuid),
    )
    next_row = await one_row(cur)
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
    row = await one_row(cur)
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


async def list_sets(conn: Conn, zone_id: str) -> list[PolicySet]:
    """Active policy sets, oldest first."""
    await require_zone(conn, zone_id)
    cur = await conn.execute(_SET_SELECT + " ORDER BY s.created_at, s.id", (zone_id,))
    return [to_set(row) for row in await cur.fetchall()]


async def create_set(
    conn: Conn, zone_id: str, body: PolicySetCreate, *, actor: str | None
) -> PolicySet:
    """Create a policy set (it has no version until one is posted); ``policy_set.created``."""
    await require_zone(conn, zone_id)
    row = await insert_set(
        conn, zone_id=zone_id, name=body.name, description=body.description, actor=actor
    )
    return to_set(row)


async def get_set(conn: Conn, zone_id: str, set_id: str) -> PolicySetDetail:
    """The set with every version (and its manifest), ascending."""
    uuid = parse_uuid(set_id, "policy_set_not_found")
    await require_zone(conn, zone_id)
    cur = await conn.execute(_SET_SELECT + " AND s.id = %s", (zone_id, uuid))
    row = await cur.fetchone()
    if row is None:
        raise NotFound("policy_set_not_found")
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


async def create_version(
    conn: Conn, zone_id: str, set_id: str, body: PolicySetVersionCreate, *, actor: str | None
) -> PolicySetVersion:
    """Add the next immutable set version from a manifest (``check_manifest`` run by the
    caller); ``policy_set_version.created``."""
    await require_zone(conn, zone_id)
    set_uuid = await require_set(conn, zone_id, set_id, lock=True)
    row = await insert_set_version(
        conn,
        zone_id=zone_id,
        set_uuid=set_uuid,
        wanted=[entry.policy_version_id for entry in body.manifest],
        schema_version=body.schema_version,
        actor=actor,
    )
    return to_set_version(row)


async def archive_set(conn: Conn, zone_id: str, set_id: str, *, actor: str | None) -> None:
    """Archive the set (a zone whose active version belongs to it keeps evaluating it);
    ``policy_set.archived``."""
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
        actor_id=actor,
        metadata={"policy_set_id": str(set_uuid)},
    )
