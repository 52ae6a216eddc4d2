"""Policies: Rego modules of a zone with immutable, numbered versions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row, require_active
from controlplane.errors import Unprocessable
from controlplane.pdp.contract import RegoContractError, check_contract
from controlplane.pdp.opa_engine import opa_available
from controlplane.pdp.sandbox import check_in_sandbox
from controlplane.policies.manifest import content_sha256
from controlplane.registry.zones import require_zone

DEFAULT_SCHEMA_VERSION = "2026-03-16"
#: A non-empty string without NUL characters (PostgreSQL text cannot hold them).
Text = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^\x00]*$")]
OptionalText = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$")]


class PolicyVersion(msgspec.Struct):
    """PolicyVersion object (no content)."""

    id: str
    policy_id: str
    version: int
    content_sha256: str
    schema_version: str
    created_at: datetime


class PolicyVersionWithContent(PolicyVersion):
    """A version in ``GET …/policies/{id}``: the PolicyVersion object plus its content."""

    content: str


class Policy(msgspec.Struct):
    """Policy object; ``version`` is the latest version (the first one on create)."""

    id: str
    zone_id: str
    name: str
    description: str | None
    owner_type: str
    created_by: str | None
    created_at: datetime
    version: PolicyVersion


class PolicyDetail(Policy):
    """``GET …/policies/{id}``: the policy with every version, ascending, with content."""

    versions: list[PolicyVersionWithContent]


class PolicyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policies body."""

    name: Text
    content: str
    description: OptionalText | None = None
    owner_type: Text = "customer"
    schema_version: Text = DEFAULT_SCHEMA_VERSION

    example: ClassVar[dict[str, Any]] = {
        "name": "allow-all",
        "content": 'package caracal.authz\n\nresult := {"allow": true}\n',
    }


class PolicyVersionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policies/{id}/versions body."""

    content: str
    schema_version: Text = DEFAULT_SCHEMA_VERSION

    example: ClassVar[dict[str, Any]] = {
        "content": 'package caracal.authz\n\nresult := {"allow": true}\n'
    }


_POLICY_COLUMNS = "id, zone_id, name, description, owner_type, created_by, created_at"
_VERSION_COLUMNS = "id, policy_id, version, content_sha256, schema_version, created_at"


def to_version(row: dict[str, Any]) -> PolicyVersion:
    """Version row to PolicyVersion."""
    return PolicyVersion(
        id=str(row["id"]),
        policy_id=str(row["policy_id"]),
        version=row["version"],
        content_sha256=row["content_sha256"],
        schema_version=row["schema_version"],
        created_at=row["created_at"],
    )


def _policy_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "zone_id": row["zone_id"],
        "name": row["name"],
        "description": row["description"],
        "owner_type": row["owner_type"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }


def contract_error(content: str, name: str = "policy.rego") -> RegoContractError | None:
    """The contract violation of ``content``, or None; safe to run in a worker thread: the
    engine check_contract made dies in that thread, since the error returned is a fresh one
    without the traceback (whose frames hold the engine)."""
    try:
        check_contract(content, name)
    except RegoContractError as exc:
        return RegoContractError(exc.message, exc.detail)
    return None


async def validate_rego(content: str, opa_compile_check: str = "off") -> RegoContractError | None:
    """The contract violation of ``content``, or None: checked in the sandbox process
    (``controlplane.pdp.sandbox``), off the event loop. With ``opa_compile_check="auto"``
    (the setting), a module that OPA's compiler refuses is a violation too when OPA's engine
    is installed."""
    if "\x00" in content:
        return RegoContractError("policy.rego: content must not contain NUL characters")
    opa = opa_compile_check == "auto" and opa_available()
    return await asyncio.to_thread(check_in_sandbox, content, opa=opa)


def invalid_rego(error: RegoContractError) -> Unprocessable:
    """Unprocessable invalid_rego with the engine's one-line message."""
    return Unprocessable("invalid_rego", error.message)


async def insert_version(
    conn: Conn,
    *,
    zone_id: str,
    policy_id: UUID,
    version: int,
    content: str,
    schema_version: str,
    created_by: str | None,
) -> dict[str, Any]:
    """Insert one immutable policy version; return its row."""
    cur = await conn.execute(
        "INSERT INTO policy_versions (zone_id, id, policy_id, version, content, content_sha256,"
        " schema_version, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_VERSION_COLUMNS}",
        (
            zone_id,
            uuid7(),
            policy_id,
            version,
            content,
            content_sha256(content),
            schema_version,
            created_by,
        ),
    )
    row = await one_row(cur)
    return row


async def require_policy(
    conn: Conn, zone_id: str, policy_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The active policy row (locked on request); NotFound policy_not_found."""
    return await require_active(
        conn, "policies", _POLICY_COLUMNS, zone_id, policy_id, "policy_not_found", lock=lock
    )


async def insert_policy(
    conn: Conn,
    *,
    zone_id: str,
    name: str,
    content: str,
    description: str | None,
    owner_type: str,
    schema_version: str,
    actor: str | None,
    audit: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Insert a policy with its version 1 and (unless ``audit`` is false, for a caller that
    records one event of its own) the audit event; return both rows.

    The caller has validated ``content`` (``validate_rego``) and the zone.
    """
    policy_id = uuid7()
    cur = await conn.execute(
        "INSERT INTO policies (zone_id, id, name, description, owner_type, created_by)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_POLICY_COLUMNS}",
        (zone_id, policy_id, name, description, owner_type, actor),
    )
    row = await one_row(cur)
    version = await insert_version(
        conn,
        zone_id=zone_id,
        policy_id=policy_id,
        version=1,
        content=content,
        schema_version=schema_version,
        created_by=actor,
    )
    if not audit:
        return row, version
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="policy.created",
        actor_id=actor,
        metadata={
            "policy_id": str(policy_id),
            "name": name,
            "owner_type": owner_type,
            "policy_version_id": str(version["id"]),
            "version": 1,
            "content_sha256": version["content_sha256"],
        },
    )
    return row, version


async def list_policies(conn: Conn, zone_id: str) -> list[Policy]:
    """Active policies, oldest first, each with its latest version (no content)."""
    await require_zone(conn, zone_id)
    cur = await conn.execute(
        "SELECT p.id, p.zone_id, p.name, p.description, p.owner_type, p.created_by,"
        " p.created_at, v.id AS v_id, v.version, v.content_sha256, v.schema_version,"
        " v.created_at AS v_created_at"
        " FROM policies p CROSS JOIN LATERAL ("
        "  SELECT id, version, content_sha256, schema_version, created_at"
        "  FROM policy_versions WHERE zone_id = p.zone_id AND policy_id = p.id"
        "  ORDER BY version DESC LIMIT 1) v"
        " WHERE p.zone_id = %s AND p.archived_at IS NULL ORDER BY p.created_at, p.id",
        (zone_id,),
    )
    rows = await cur.fetchall()
    return [
        Policy(
            **_policy_fields(row),
            version=to_version(
                {
                    **row,
                    "id": row["v_id"],
                    "policy_id": row["id"],
                    "created_at": row["v_created_at"],
                }
            ),
        )
        for row in rows
    ]


async def create_policy(
    conn: Conn,
    zone_id: str,
    body: PolicyCreate,
    error: RegoContractError | None,
    *,
    actor: str | None,
) -> Policy:
    """Create a policy and its version 1, recording ``policy.created``; ``error`` is
    ``validate_rego(body.content)``, run by the caller before the transaction
    (Unprocessable invalid_rego once the zone is known)."""
    await require_zone(conn, zone_id)
    if error is not None:
        raise invalid_rego(error)
    row, version = await insert_policy(
        conn,
        zone_id=zone_id,
        name=body.name,
        content=body.content,
        description=body.description,
        owner_type=body.owner_type,
        schema_version=body.schema_version,
        actor=actor,
    )
    return Policy(**_policy_fields(row), version=to_version(version))


async def get_policy(conn: Conn, zone_id: str, policy_id: str) -> PolicyDetail:
    """The policy with its full version history (with content)."""
    await require_zone(conn, zone_id)
    row = await require_policy(conn, zone_id, policy_id)
    cur = await conn.execute(
        f"SELECT {_VERSION_COLUMNS}, content FROM policy_versions"
        " WHERE zone_id = %s AND policy_id = %s ORDER BY version",
        (zone_id, row["id"]),
    )
    versions = await cur.fetchall()
    return PolicyDetail(
        **_policy_fields(row),
        version=to_version(versions[-1]),
        versions=[
            PolicyVersionWithContent(**msgspec.structs.asdict(to_version(v)), content=v["content"])
            for v in versions
        ],
    )


async def create_version(
    conn: Conn,
    zone_id: str,
    policy_id: str,
    body: PolicyVersionCreate,
    error: RegoContractError | None,
    *,
    actor: str | None,
) -> PolicyVersion:
    """Add the next immutable version (numbering has no gaps under concurrency) and record
    ``policy_version.created``; ``error`` as in ``create_policy``."""
    await require_zone(conn, zone_id)
    policy = await require_policy(conn, zone_id, policy_id, lock=True)
    if error is not None:
        raise invalid_rego(error)
    cur = await conn.execute(
        "SELECT coalesce(max(version), 0) + 1 AS next FROM policy_versions"
        " WHERE zone_id = %s AND policy_id = %s",
        (zone_id, policy["id"]),
    )
    next_row = await one_row(cur)
    version = await insert_version(
        conn,
        zone_id=zone_id,
        policy_id=policy["id"],
        version=next_row["next"],
        content=body.content,
        schema_version=body.schema_version,
        created_by=actor,
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="policy_version.created",
        actor_id=actor,
        metadata={
            "policy_id": str(policy["id"]),
            "policy_version_id": str(version["id"]),
            "version": version["version"],
            "content_sha256": version["content_sha256"],
        },
    )
    return to_version(version)


async def archive_policy(conn: Conn, zone_id: str, policy_id: str, *, actor: str | None) -> None:
    """Archive the policy (its versions stay, immutable); record ``policy.archived``."""
    await require_zone(conn, zone_id)
    policy = await require_policy(conn, zone_id, policy_id, lock=True)
    await conn.execute(
        "UPDATE policies SET archived_at = now() WHERE zone_id = %s AND id = %s",
        (zone_id, policy["id"]),
    )
    await record_event(
        conn,
        zone_id=zone_id,
        event_type="policy.archived",
        actor_id=actor,
        metadata={"policy_id": str(policy["id"])},
    )
