"""The decision audit log's group-commit writer.

Each decision awaits the durable insert of its own audit event, but concurrent decisions
share one multi-row ``INSERT … SELECT FROM unnest(…)`` on the writer's own autocommit
connection: while one batch is being written the next one gathers, so under load a
decision costs a fraction of a database round trip and an acknowledged decision is never
missing from the audit log (a failed write fails the decisions of that batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg

from controlplane.services import Services

log = logging.getLogger("controlplane.decision_audit")

MAX_BATCH = 500

_INSERT = (
    "INSERT INTO audit_events (id, zone_id, event_type, request_id, actor_id, decision,"
    " evaluation_status, metadata_json, policy_set_id, policy_set_version_id, manifest_sha,"
    " determining_policies_json, diagnostics_json, shadow_decision,"
    " shadow_policy_set_version_id, occurred_at)"
    " SELECT id, zone_id, event_type, request_id, actor_id, decision, evaluation_status,"
    " metadata::jsonb, policy_set_id, policy_set_version_id, manifest_sha,"
    " determining::jsonb, diagnostics::jsonb, shadow_decision, shadow_version_id, occurred_at"
    " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::uuid[], %s::timestamptz[])"
    " AS t(id, zone_id, event_type, request_id, actor_id, decision, evaluation_status, metadata,"
    " policy_set_id, policy_set_version_id, manifest_sha, determining, diagnostics,"
    " shadow_decision, shadow_version_id, occurred_at)"
)
_json = msgspec.json.Encoder()


class AuditWriteError(Exception):
    """The batch holding this event could not be written."""


@dataclass(slots=True)
class DecisionEvent:
    """One audit row of a decision (``event_type`` ``decision`` unless a hook says else)."""

    id: UUID
    zone_id: str
    request_id: str | None
    actor_id: str | None
    decision: str | None
    evaluation_status: str
    metadata: dict[str, Any]
    policy_set_id: str | None
    policy_set_version_id: str | None
    manifest_sha: str | None
    determining_policies: list[dict[str, str]] | None
    diagnostics: list[dict[str, str]] | None
    shadow_decision: str | None
    shadow_policy_set_version_id: str | None
    occurred_at: datetime
    event_type: str = "decision"


def _json_text(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()


def _columns(events: list[DecisionEvent]) -> tuple[list[Any], ...]:
    return (
        [e.id for e in events],
        [e.zone_id for e in events],
        [e.event_type for e in events],
        [e.request_id for e in events],
        [e.actor_id for e in events],
        [e.decision for e in events],
        [e.evaluation_status for e in events],
        [_json_text(e.metadata) for e in events],
        [e.policy_set_id for e in events],
        [e.policy_set_version_id for e in events],
        [e.manifest_sha for e in events],
        [_json_text(e.determining_policies) for e in events],
        [_json_text(e.diagnostics) for e in events],
        [e.shadow_decision for e in events],
        [e.shadow_policy_set_version_id for e in events],
        [e.occurred_at for e in events],
    )


class DecisionAuditWriter:
    """Batches concurrent ``write`` calls into one INSERT each."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH) -> None:
        self.url = url
        self.max_batch = max_batch
        self._queue: list[tuple[DecisionEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def write(self, event: DecisionEvent) -> None:
        """Return once ``event`` is committed; raise ``AuditWriteError`` if it could not be."""
        if self._task is None or self._task.done() or self._stopping:
            raise AuditWriteError("the decision audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wake.set()
        await future

    def start(self) -> None:
        """Start the flushing task."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="decision-audit-writer")

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._flush()
            if self._stopping:
                return

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, options="-c TimeZone=UTC"
                )
            await self._conn.execute(_INSERT, _columns([event for event, _ in batch]))
        except Exception as exc:
            log.error(
                "decision audit write failed", extra={"events": len(batch), "error": repr(exc)}
            )
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            for _, future in batch:
                if not future.done():
                    future.set_exception(AuditWriteError(str(exc)))
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)


def audit_writer_of(services: Services) -> DecisionAuditWriter:
    """The process's decision audit writer (created on first use)."""
    writer = services.extras.get("decision_audit")
    if writer is None:
        writer = services.extras["decision_audit"] = DecisionAuditWriter(services.db.url)
    return writer


@asynccontextmanager
async def decision_audit_component(services: Services) -> AsyncIterator[None]:
    """Run the writer for the life of the process; flush what is queued at shutdown."""
    writer = audit_writer_of(services)
    writer.start()
    try:
        yield
    finally:
        await writer.close()
