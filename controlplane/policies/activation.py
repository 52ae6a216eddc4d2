"""Activation: which policy-set version a zone evaluates (and which shadow version runs
beside it, observe-only); announced to every process through the outbox."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import msgspec

from controlplane.audit.admin_events import record_event
from controlplane.db.pool import Conn
from controlplane.db.rows import one_row
from controlplane.errors import Conflict, NotFound, Unprocessable
from controlplane.outbox.enqueue import TOPIC_POLICY_INVALIDATE, enqueue
from controlplane.pdp.contract import RegoContractError
from controlplane.pdp.runtime import PdpRuntime, SetVersionRow, ZoneState, fetch_set_version
from controlplane.policies.policy_sets import require_set
from controlplane.registry.zones import require_zone


class ActivateBody(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/policy-sets/{id}/activate body."""

    version_id: UUID
    shadow_version_id: UUID | None = None

    example: ClassVar[dict[str, Any]] = {"version_id": "0190f3c2-7b1e-7d3a-9c4e-2f6a8b1d5e70"}


class Activation(msgspec.Struct):
    """202 body of an activation."""

    activated: bool
    version_id: str
    shadow_version_id: str | None
    outbox_id: str


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _archived_entries(row: SetVersionRow) -> list[str]:
    return [e.policy_version_id for e in row.entries if e.policy_archived]


async def activate_version(
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
        raise NotFound("version_not_found")
    shadow = None
    if shadow_version_id is not None:
        shadow = await fetch_set_version(conn, zone_id, shadow_version_id, live_sets_only=True)
        if shadow is None:
            raise NotFound("shadow_version_not_found")
    archived = _archived_entries(active) + (_archived_entries(shadow) if shadow else [])
    if archived:
        raise Conflict(
            "referenced_policy_version_missing",
            f"the policy of version {archived[0]} was archived",
        )
    try:
        compiled_active = await runtime.compile(conn, zone_id, active, check=True)
        compiled_shadow = (
            await runtime.compile(conn, zone_id, shadow, check=True) if shadow else None
        )
    except RegoContractError as exc:
        raise Unprocessable("invalid_policy_contract", exc.message) from None
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
        " RETURNING generation, activated_at",
        (zone_id, version_id, shadow_version_id, actor),
    )
    state = await one_row(cur)
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
    state_now = ZoneState(
        zone_id, state["generation"], compiled_active, compiled_shadow, state["activated_at"]
    )
    activation = Activation(
        activated=True,
        version_id=str(version_id),
        shadow_version_id=shadow_id,
        outbox_id=outbox_id,
    )
    return activation, state_now


async def activate(
    conn: Conn,
    runtime: PdpRuntime,
    zone_id: str,
    set_id: str,
    body: ActivateBody,
    *,
    actor: str | None,
) -> tuple[Activation, ZoneState]:
    """Make a version of set ``set_id`` the zone's single active version (optionally with a
    shadow version of any live set of the zone), the zone row locked; install the returned
    ZoneState in the runtime only after the commit."""
    await require_zone(conn, zone_id, lock=True)
    set_uuid = await require_set(conn, zone_id, set_id)
    return await activate_version(
        conn,
        runtime,
        zone_id=zone_id,
        set_uuid=set_uuid,
        version_id=body.version_id,
        shadow_version_id=body.shadow_version_id,
        actor=actor,
    )
