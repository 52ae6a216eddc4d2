"""The decision audit log's group-commit writer.

Each decision awaits the durable insert of its own audit event, but concurrent decisions
share one multi-row ``INSERT … SELECT FROM jsonb_to_recordset(…)`` on the writer's own
autocommit connection: while one batch is being written the next one gathers, so under load
a decision costs a fraction of a database round trip and an acknowledged decision is never
missing from the audit log (a failed write fails the decisions of that batch; a row that
PostgreSQL refuses as data fails alone).

A connection that breaks after the INSERT was sent leaves the batch in doubt (it may have
committed). The writer then sends it once more on a fresh connection with ``ON CONFLICT DO
NOTHING`` (the event ids are made here, so a row that did commit is not written twice, and
one still being committed elsewhere is waited for): the decisions answer 200 if that
succeeds, and 503 saying the outcome is unknown if it does not (docs/outages.md).

The events of one ``write_all`` call (a batch request) always travel in the same INSERT:
they are written all together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
import psycopg

from controlplane.db.pool import connection_broke, looks_alive
from controlplane.metrics.audit import audit_write_timer

log = logging.getLogger("controlplane.decision_audit")

MAX_BATCH = 500
#: Longest a batch INSERT may take (also the TCP user timeout of the writer's connection).
STATEMENT_TIMEOUT_MS = 10_000

# The whole batch travels as one JSON array (encoded by msgspec in C) and is unpacked by
# PostgreSQL: much cheaper per row than psycopg's Python-level array adaptation.
_INSERT = (
    "INSERT INTO audit_events (id, zone_id, event_type, request_id, actor_id, decision,"
    " evaluation_status, metadata_json, policy_set_id, policy_set_version_id, manifest_sha,"
    " determining_policies_json, diagnostics_json, shadow_decision,"
    " shadow_policy_set_version_id, occurred_at)"
    " SELECT id, zone_id, event_type, request_id, actor_id, decision, evaluation_status,"
    " coalesce(metadata_json, '{}'), policy_set_id, policy_set_version_id, manifest_sha,"
    " determining_policies_json, diagnostics_json, shadow_decision,"
    " shadow_policy_set_version_id, occurred_at"
    " FROM jsonb_to_recordset(%s::jsonb) AS t(id uuid, zone_id text, event_type text,"
    " request_id text, actor_id text, decision text, evaluation_status text,"
    " metadata_json jsonb, policy_set_id uuid, policy_set_version_id uuid, manifest_sha text,"
    " determining_policies_json jsonb, diagnostics_json jsonb, shadow_decision text,"
    " shadow_policy_set_version_id uuid, occurred_at timestamptz)"
)
#: The same batch again after a broken connection: rows that did commit are kept as they are.
_INSERT_AGAIN = _INSERT + " ON CONFLICT (id, occurred_at) DO NOTHING"
_json = msgspec.json.Encoder()


#: The events of one ``write_all`` call and the future its caller awaits.
Pending = tuple[list["DecisionEvent"], "asyncio.Future[None]"]


class AuditWriteError(Exception):
    """The batch holding this event could not be written; ``in_doubt`` when it may have
    been committed all the same (the connection broke after the INSERT was sent)."""

    def __init__(self, message: str, *, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt


class _InDoubt(Exception):
    """The connection broke after the INSERT was sent: the batch may have been written."""


class DecisionEvent(msgspec.Struct, kw_only=True):
    """One audit row of a decision (``event_type`` ``decision`` unless a hook says else).

    Encoded as it is for ``_INSERT`` (the JSON names are the columns')."""

    id: UUID | str
    zone_id: str
    request_id: str | None
    actor_id: str | None
    decision: str | None
    evaluation_status: str
    #: a dict, or its JSON already encoded (``msgspec.Raw``)
    metadata: dict[str, Any] | msgspec.Raw = msgspec.field(name="metadata_json")
    policy_set_id: str | None
    policy_set_version_id: str | None
    manifest_sha: str | None
    determining_policies: list[dict[str, str]] | None = msgspec.field(
        name="determining_policies_json"
    )
    diagnostics: list[dict[str, str]] | None = msgspec.field(name="diagnostics_json")
    shadow_decision: str | None
    shadow_policy_set_version_id: str | None
    occurred_at: datetime
    event_type: str = "decision"


def encode_batch(events: list[DecisionEvent]) -> str:
    """The batch as the JSON array ``_INSERT`` unpacks (one object per row)."""
    return _json.encode(events).decode()


class DecisionAuditWriter:
    """Batches concurrent ``write`` calls into one INSERT each."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH) -> None:
        self.url = url
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: True while an INSERT is on its way (``DecisionAuditLanes`` looks)
        self.flushing = False

    async def write_all(self, events: list[DecisionEvent]) -> None:
        """Return once all ``events`` are committed (in one INSERT); raise ``AuditWriteError``
        if they could not be."""
        if self._task is None or self._task.done() or self._stopping:
            raise AuditWriteError("the decision audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((events, future))
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
            self.flushing = True
            while self._queue:
                await self._flush()
            self.flushing = False
            if self._stopping:
                return

    @property
    def queued(self) -> int:
        """How many writes wait for the next INSERT."""
        return len(self._queue)

    def _take(self) -> list[Pending]:
        """The next groups from the queue: up to ``max_batch`` events (at least one group)."""
        rows = taken = 0
        for events, _ in self._queue:
            if taken and rows + len(events) > self.max_batch:
                break
            rows += len(events)
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _flush(self) -> None:
        batch = self._take()
        try:
            await self._insert([event for events, _ in batch for event in events])
        except psycopg.DataError:
            # One bad row (a NUL character jsonb refuses) must not fail its neighbours.
            for pending in batch:
                await self._settle([pending], sanitize=True)
            return
        except _InDoubt:
            await self._reset()
            await self._send_again(batch)
            return
        except Exception as exc:
            await self._reset()
            self._fail(batch, exc)
            return
        self._succeed(batch)

    async def _settle(self, batch: list[Pending], *, sanitize: bool) -> None:
        """Insert a (small) batch alone, resolving its futures either way."""
        events = [
            _without_nul(event) if sanitize else event for events, _ in batch for event in events
        ]
        try:
            await self._insert(events)
        except _InDoubt:
            await self._reset()
            await self._send_again(batch, events)
            return
        except Exception as exc:
            if not isinstance(exc, psycopg.DataError):
                await self._reset()
            self._fail(batch, exc)
            return
        self._succeed(batch)

    async def _send_again(
        self, batch: list[Pending], events: list[DecisionEvent] | None = None
    ) -> None:
        """Resolve a batch left in doubt: send it once more, idempotently, on a fresh
        connection; its decisions fail as in doubt if that fails too."""
        try:
            again = events or [event for group, _ in batch for event in group]
            await self._insert(again, statement=_INSERT_AGAIN)
        except Exception as exc:
            await self._reset()
            self._fail(batch, exc, in_doubt=True)
            return
        log.info("decision audit batch written on a second try", extra={"events": len(batch)})
        self._succeed(batch)

    async def _insert(self, events: list[DecisionEvent], statement: str = _INSERT) -> None:
        """Send the INSERT; ``_InDoubt`` when the connection broke after sending it."""
        if self._conn is not None and not looks_alive(self._conn):
            await self._reset()  # the server said goodbye while the connection was idle
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=5,
                # A database that vanishes without a reset (a partition) must fail the batch
                # (503) in seconds, not hang every decision until the kernel gives up.
                options=f"-c TimeZone=UTC -c statement_timeout={STATEMENT_TIMEOUT_MS}",
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                tcp_user_timeout=STATEMENT_TIMEOUT_MS,
            )
        conn = self._conn
        try:
            with audit_write_timer(len(events)):
                await conn.execute(statement, (encode_batch(events),))
        except psycopg.OperationalError as exc:
            if connection_broke(conn):
                raise _InDoubt(str(exc)) from exc
            raise

    def _succeed(self, batch: list[Pending]) -> None:
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def _fail(self, batch: list[Pending], exc: Exception, *, in_doubt: bool = False) -> None:
        events = sum(len(events) for events, _ in batch)
        log.error(
            "decision audit write failed",
            extra={"events": events, "error": repr(exc), "in_doubt": in_doubt},
        )
        for _, future in batch:
            if not future.done():
                future.set_exception(AuditWriteError(str(exc), in_doubt=in_doubt))

    async def _reset(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _clean(value: Any) -> Any:
    """``value`` with every NUL character in strings and keys replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _without_nul(event: DecisionEvent) -> DecisionEvent:
    """A copy of ``event`` that jsonb accepts (it refuses ``\\u0000``)."""
    metadata = event.metadata
    if isinstance(metadata, msgspec.Raw):
        metadata = msgspec.json.decode(metadata)
    return msgspec.structs.replace(
        event,
        metadata=_clean(metadata),
        determining_policies=_clean(event.determining_policies),
        diagnostics=_clean(event.diagnostics),
        request_id=_clean(event.request_id),
        actor_id=_clean(event.actor_id),
    )


class DecisionAuditSink(Protocol):
    """What the decision pipeline writes to: a ``DecisionAuditWriter`` or several
    (``controlplane.audit.writer_lanes``)."""

    async def write_all(self, events: list[DecisionEvent]) -> None: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


@asynccontextmanager
async def decision_audit_component(writer: DecisionAuditSink) -> AsyncIterator[None]:
    """Run the writer for the life of the process; flush what is queued at shutdown."""
    writer.start()
    try:
        yield
    finally:
        await writer.close()
