"""OPA decision logs into the zone's audit log (``POST …/opa/logs``).

OPA uploads gzip-compressed JSON arrays of decision events (``v1/plugins/logs``: the encoder
writes ``[`` event ``,`` event … ``]`` into one gzip stream, 32 KiB per chunk by default) and
retries a whole chunk after any non-2xx answer. So a chunk is stored all or nothing, and
storing is idempotent per ``(zone, decision_id)``: ``opa_decision_ids`` holds the key of
every event stored, inserted in the same transaction as the audit rows with ``ON CONFLICT DO
NOTHING … RETURNING``; only the ids that insert returns get an audit row. A concurrent retry
of the same chunk waits on the key's index entry and then finds it taken.
(``audit_events`` is partitioned by ``occurred_at``: a unique index there would have to
include the timestamp, which is why the key lives in its own table.)
An event nested deeper than the body limit is stored too, its too-deep parts summarised
(``controlplane.fleet.deep_events``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from uuid6 import uuid7

from controlplane.audit.decision_events import _INSERT, DecisionEvent, _without_nul, encode_batch
from controlplane.db.pool import Conn
from controlplane.decisions.pipeline import MAX_DIAGNOSTIC_CHARS, audited, audited_input
from controlplane.errors import Invalid
from controlplane.fleet.deep_events import within_depth
from controlplane.json_depth import TOO_DEEP_TO_DECODE
from controlplane.keys.secret_fields import redact, scrub, secret_values

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENTS",
    "MAX_GZIP_BYTES",
    "MAX_UNPACKED_BYTES",
    "IngestResult",
    "check_events",
    "gunzip_capped",
    "inflate",
    "store_events",
]

EVENT_TYPE = "decision.opa"
MAX_GZIP_BYTES = 8 * 1024 * 1024
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 100_000
#: Longest OPA ``decision_id`` kept (it becomes the event's request id).
MAX_DECISION_ID = 200
_INSERT_BATCH = 2_000
_DECISIONS = frozenset(("allow", "deny", "partial"))
_GZIP_MAGIC = b"\x1f\x8b"


def gunzip_capped(data: bytes, limit: int = MAX_UNPACKED_BYTES) -> bytes:
    """Inflate a gzip body (members in sequence, as Go's reader reads them), never more than
    ``limit`` bytes: 400 invalid_body past it or for anything that is not whole gzip."""
    out = bytearray()
    pending = data
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while True:
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise Invalid.body(f"the body inflates to more than {limit} bytes")
                pending = inflater.unconsumed_tail
                if inflater.eof or not pending:
                    break
        except zlib.error:
            raise Invalid.body("the body is not valid gzip") from None
        if not inflater.eof:
            raise Invalid.body("the body is not valid gzip (truncated)")
        pending = inflater.unused_data
        if not pending:
            return bytes(out)


def inflate(body: bytes, gzipped: bool) -> bytes:
    """The JSON text of one upload: gunzipped (capped) when it says or looks gzipped."""
    if gzipped or body[:2] == _GZIP_MAGIC:
        return gunzip_capped(body)
    return body


def check_events(value: Any) -> list[Any]:
    """The decoded upload as its events: a JSON array of at most ``MAX_EVENTS`` values."""
    if not isinstance(value, list):
        raise Invalid.body("expected a JSON array of decision events")
    if len(value) > MAX_EVENTS:
        raise Invalid.body(f"more than {MAX_EVENTS} events in one request")
    return value


@dataclass(frozen=True, slots=True)
class _Parsed:
    decision_id: str
    occurred_at: datetime
    event: dict[str, Any]


def _parse(event: Any) -> _Parsed | None:
    """The event's key and time, or None when it lacks a usable ``decision_id``/``timestamp``."""
    if not isinstance(event, dict):
        return None
    decision_id, timestamp = event.get("decision_id"), event.get("timestamp")
    if (
        not isinstance(decision_id, str)
        or not 0 < len(decision_id) <= MAX_DECISION_ID
        or "\x00" in decision_id
        or not isinstance(timestamp, str)
    ):
        return None
    try:
        occurred_at = msgspec.convert(timestamp, datetime)
    except msgspec.ValidationError:
        return None
    if occurred_at.tzinfo is None:
        return None
    return _Parsed(decision_id, occurred_at, event)


def _revisions(event: dict[str, Any]) -> list[str]:
    """Bundle revisions the event names: ``bundles{name: {revision}}``, then the older
    ``revision`` field."""
    found: list[str] = []
    bundles = event.get("bundles")
    if isinstance(bundles, dict):
        for info in bundles.values():
            if isinstance(info, dict) and isinstance(info.get("revision"), str):
                found.append(info["revision"])
    if isinstance(event.get("revision"), str):
        found.append(event["revision"])
    return found


def _as_uuid(text: str) -> str | None:
    try:
        return str(UUID(text))
    except ValueError:
        return None


async def _zone_versions(conn: Conn, zone_id: str, revisions: set[str]) -> dict[str, dict]:
    """``revision -> {id, policy_set_id, manifest_sha256}`` for the revisions that name a
    set version of this zone."""
    ids = {r: u for r in revisions if (u := _as_uuid(r)) is not None}
    if not ids:
        return {}
    cur = await conn.execute(
        "SELECT id, policy_set_id, manifest_sha256 FROM policy_set_versions"
        " WHERE zone_id = %s AND id = ANY(%s::uuid[])",
        (zone_id, sorted(set(ids.values()))),
    )
    rows = {str(r["id"]): r for r in await cur.fetchall()}
    return {r: rows[u] for r, u in ids.items() if u in rows}


def _audit_event(
    zone_id: str, actor_id: str | None, parsed: _Parsed, versions: dict[str, dict], *, deep: bool
) -> DecisionEvent:
    """The event's audit row; ``deep``: its parts may nest too deep (``within_depth``)."""
    event = parsed.event
    raw_labels = event.get("labels")
    labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
    revisions = _revisions(event)
    version = next((versions[r] for r in revisions if r in versions), None)
    result = event.get("result")
    decision = result.get("decision") if isinstance(result, dict) else None
    shaped = isinstance(decision, str) and decision in _DECISIONS  # a dict is not hashable
    input = event.get("input")
    error = event.get("error")
    metadata: dict[str, Any] = {
        "actor": actor_id,
        "pdp_instance_id": labels.get("id"),
        "opa_version": labels.get("version"),
        "path": event.get("path"),
        "bundle_revisions": revisions,
        "policy_set_version_id": str(version["id"]) if version else None,
        **audited_input(input if isinstance(input, dict) else {"value": input}),
    }
    if shaped:
        assert isinstance(result, dict)
        metadata.update(
            reasons=audited(result.get("reasons")),
            granted_scopes=audited(result.get("granted_scopes")),
            obligations=audited(result.get("obligations")),
            step_up=audited(result.get("step_up")),
        )
    elif result is not None:
        metadata["result"] = audited(result)
    for name in ("erased", "masked", "requested_by", "req_id"):
        if event.get(name) is not None:
            metadata[name] = event[name]
    if error is not None:
        secrets = secret_values(input) if isinstance(input, dict) else set()
        metadata["error"] = scrub(msgspec.json.encode(error).decode(), secrets)[
            :MAX_DIAGNOSTIC_CHARS
        ]
    if deep:
        metadata = within_depth(metadata)
    return DecisionEvent(
        id=uuid7(),
        zone_id=zone_id,
        request_id=parsed.decision_id,
        actor_id=actor_id,
        decision=decision if shaped else None,
        evaluation_status="error" if error is not None else "complete",
        metadata=redact(metadata),
        policy_set_id=str(version["policy_set_id"]) if version else None,
        policy_set_version_id=str(version["id"]) if version else None,
        manifest_sha=version["manifest_sha256"] if version else None,
        determining_policies=None,
        diagnostics=None,
        shadow_decision=None,
        shadow_policy_set_version_id=None,
        occurred_at=parsed.occurred_at,
        event_type=EVENT_TYPE,
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    """How many events were stored, were already stored, or were skipped as unusable."""

    stored: int
    duplicates: int
    skipped: int


async def store_events(
    conn: Conn,
    zone_id: str,
    actor_id: str | None,
    events: Sequence[Any],
    *,
    has_nul: bool,
    deep: bool,
) -> IngestResult:
    """Store the new events of one upload in the caller's transaction (all or nothing).
    ``has_nul``: the upload holds ``\\u0000`` (which jsonb refuses); ``deep``: an event may nest
    deeper than ``MAX_DEPTH`` (``holds_deep_events``)."""
    parsed: dict[str, _Parsed] = {}
    skipped = 0
    for raw in events:
        item = _parse(raw)
        if item is None:
            skipped += 1
        else:
            parsed.setdefault(item.decision_id, item)
    if not parsed:
        return IngestResult(0, 0, skipped)
    items = list(parsed.values())
    cur = await conn.execute(
        "INSERT INTO opa_decision_ids (zone_id, decision_id, occurred_at)"
        " SELECT %s, d, t FROM unnest(%s::text[], %s::timestamptz[]) AS u(d, t)"
        " ON CONFLICT (zone_id, decision_id) DO NOTHING RETURNING decision_id",
        (zone_id, [p.decision_id for p in items], [p.occurred_at for p in items]),
    )
    new = {row["decision_id"] for row in await cur.fetchall()}
    fresh = [p for p in items if p.decision_id in new]
    revisions = {r for p in fresh for r in _revisions(p.event)}
    versions = await _zone_versions(conn, zone_id, revisions)
    try:
        rows = [_audit_event(zone_id, actor_id, p, versions, deep=deep) for p in fresh]
    except RecursionError:  # a part about as deep as the decoder goes, measured deeper in the stack
        raise Invalid.body(TOO_DEEP_TO_DECODE) from None
    if has_nul:  # jsonb refuses \u0000
        rows = [_without_nul(row) for row in rows]
    for start in range(0, len(rows), _INSERT_BATCH):
        await conn.execute(_INSERT, (encode_batch(rows[start : start + _INSERT_BATCH]),))
    duplicates = len(events) - skipped - len(fresh)
    return IngestResult(len(fresh), duplicates, skipped)
