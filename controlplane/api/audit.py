"""Audit queries: ``/v1/zones/{zoneId}/audit`` and ``…/audit/by-request/{requestId}``.

Writes go through ``controlplane.audit.admin_events.record_event`` (and the decision writer,
``controlplane.audit.decision_events``); this module only reads. ``metadata_json`` is
redacted again at read time, so rows written before a key became secret, or by another
writer, never show a secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import Provide

from controlplane.api.common import services_of
from controlplane.api.pagination import (
    CursorParam,
    LimitParam,
    Position,
    TimeQuery,
    decode_cursor,
    next_page,
)
from controlplane.http.errors import ApiError, invalid_query
from controlplane.keys.secret_fields import redact
from controlplane.registry.zones import require_zone
from controlplane.services import Services

DecisionFilter = Literal["allow", "deny", "partial"]
CURSOR_KIND = "audit"
BY_REQUEST_LIMIT = 1000

EVENT_COLUMNS = (
    "id, zone_id, event_type, request_id, decision, evaluation_status, metadata_json,"
    " occurred_at, ingested_at"
)
DETAIL_COLUMNS = (
    EVENT_COLUMNS + ", actor_id, policy_set_id, policy_set_version_id, manifest_sha,"
    " determining_policies_json, diagnostics_json, shadow_decision, shadow_policy_set_version_id"
)


class AuditEvent(msgspec.Struct):
    """Audit row as listed."""

    id: str
    zone_id: str
    event_type: str
    request_id: str | None
    decision: str | None
    evaluation_status: str | None
    metadata_json: dict[str, Any]
    occurred_at: datetime
    ingested_at: datetime


class AuditEventDetail(AuditEvent):
    """Audit row with the full diagnostics (by-request)."""

    actor_id: str | None
    policy_set_id: str | None
    policy_set_version_id: str | None
    manifest_sha: str | None
    determining_policies_json: list[Any]
    diagnostics_json: list[Any]
    shadow_decision: str | None
    shadow_policy_set_version_id: str | None


class AuditPage(msgspec.Struct):
    """One page of audit events."""

    rows: list[AuditEvent]
    next_cursor: str | None


class AuditFilters(msgspec.Struct, frozen=True):
    """The list filters, parsed."""

    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None
    decision: str | None = None
    event_type: str | None = None


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 query timestamp (no offset means UTC); else 400 invalid_query."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid_query("Expected an ISO 8601 timestamp", [name]) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def list_query(
    zone_id: str, filters: AuditFilters, position: Position | None, limit: int
) -> tuple[str, list[Any]]:
    """SQL and parameters of one page (``limit + 1`` rows), newest first.

    The keyset condition is a row comparison the ``(zone_id, occurred_at DESC, id DESC)``
    indexes can start from; the redundant ``occurred_at <=`` lets the planner prune the
    monthly partitions above the cursor.
    """
    conditions = ["zone_id = %s"]
    params: list[Any] = [zone_id]
    if filters.since is not None:
        conditions.append("occurred_at >= %s")
        params.append(filters.since)
    if filters.until is not None:
        conditions.append("occurred_at < %s")
        params.append(filters.until)
    for column in ("request_id", "decision", "event_type"):
        value = getattr(filters, column)
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    if position is not None:
        conditions.append("occurred_at <= %s AND (occurred_at, id) < (%s, %s)")
        params += [position.at, position.at, UUID(position.id)]
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM audit_events WHERE {' AND '.join(conditions)}"
        " ORDER BY occurred_at DESC, id DESC LIMIT %s"
    )
    return sql, [*params, limit + 1]


def _strings(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: None if row[name] is None else str(row[name]) for name in names}


def to_event(row: dict[str, Any]) -> AuditEvent:
    """Row to listed object (metadata redacted)."""
    fields = {name: row[name] for name in AuditEvent.__struct_fields__}
    fields.update(id=str(row["id"]), metadata_json=redact(row["metadata_json"] or {}))
    return AuditEvent(**fields)


def to_detail(row: dict[str, Any]) -> AuditEventDetail:
    """Row to detailed object (metadata redacted, list diagnostics never null)."""
    fields = msgspec.structs.asdict(to_event(row))
    fields.update(
        actor_id=row["actor_id"],
        manifest_sha=row["manifest_sha"],
        shadow_decision=row["shadow_decision"],
        determining_policies_json=row["determining_policies_json"] or [],
        diagnostics_json=row["diagnostics_json"] or [],
        **_strings(row, "policy_set_id", "policy_set_version_id", "shadow_policy_set_version_id"),
    )
    return AuditEventDetail(**fields)


class AuditController(Controller):
    """Query the zone's audit log."""

    path = "/v1/zones/{zone_id:str}/audit"
    tags = ["audit"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get("/", opt={"errors": {400: "invalid_cursor"}})
    async def list_events(
        self,
        zone_id: str,
        services: Services,
        since: TimeQuery = None,
        until: TimeQuery = None,
        request_id: str | None = None,
        decision: DecisionFilter | None = None,
        event_type: str | None = None,
        limit: LimitParam = 100,
        cursor: CursorParam = None,
    ) -> AuditPage:
        """Events newest first; ``since`` inclusive, ``until`` exclusive."""
        filters = AuditFilters(
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            request_id=request_id,
            decision=decision,
            event_type=event_type,
        )
        position = None
        if cursor is not None:
            position = decode_cursor(services.kek, CURSOR_KIND, zone_id, cursor, uuid_id=True)
        sql, params = list_query(zone_id, filters, position, limit)
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        page, next_cursor = next_page(
            services.kek, CURSOR_KIND, zone_id, rows, limit, "occurred_at"
        )
        return AuditPage(rows=[to_event(row) for row in page], next_cursor=next_cursor)

    @get("/by-request/{request_id:str}", opt={"errors": {404: "request_not_found"}})
    async def by_request(
        self, zone_id: str, request_id: str, services: Services
    ) -> list[AuditEventDetail]:
        """Every event of one request in this zone, oldest first; 404 request_not_found."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            if "\x00" in request_id:  # never stored (ids with one are refused)
                raise ApiError(404, "request_not_found")
            cur = await conn.execute(
                f"SELECT {DETAIL_COLUMNS} FROM audit_events"
                " WHERE zone_id = %s AND request_id = %s"
                " ORDER BY occurred_at, id LIMIT %s",
                (zone_id, request_id, BY_REQUEST_LIMIT),
            )
            rows = await cur.fetchall()
        if not rows:
            raise ApiError(404, "request_not_found")
        return [to_detail(row) for row in rows]
