"""The per-process PDP: compiled zone sets, swapped atomically, kept fresh from PostgreSQL.

* Each policy version is compiled once per process (``CompiledPolicy``, cached by version id);
  a zone's active and shadow set versions form one immutable ``ZoneState``. Installing a new
  state is one dict assignment, so an evaluation sees the old set or the new one, never a mix.
* Every ``ZoneState`` carries the zone's activation ``generation`` (``zone_policy_state``);
  a state only replaces one with a lower or equal generation, so late or duplicate
  invalidation messages cannot roll a zone back.
* Freshness: the activating process installs the new state right after its commit; the
  others reload on the ``caracal.policy.invalidate`` NOTIFY, and a reconciliation loop
  compares generations every ``CARACAL_PDP_RECONCILE_SECONDS`` so a missed message heals.
* Zones are loaded on their first decision. Unknown and archived zones are not cached.

regorus engines are bound to the thread that made them; everything here runs on the event
loop's thread (``CompiledPolicy`` parses a private engine for any other thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from controlplane.background import background
from controlplane.db.pool import Conn, Database
from controlplane.metrics.policies import zone_state_replaced
from controlplane.pdp.contract import RegoContractError, check_contract
from controlplane.pdp.evaluate import CompiledPolicy, CompiledSet, compile_policy, compile_set

log = logging.getLogger("controlplane.pdp")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One policy version of a set version's manifest."""

    policy_id: str
    policy_version_id: str
    content_sha256: str
    policy_archived: bool


@dataclass(frozen=True, slots=True)
class SetVersionRow:
    """A policy-set version as stored: ids, hash and manifest in order."""

    id: str
    policy_set_id: str
    manifest_sha256: str
    entries: tuple[ManifestEntry, ...]


@dataclass(frozen=True, slots=True)
class ZoneState:
    """What the PDP evaluates for one zone: immutable, replaced as a whole."""

    zone_id: str
    generation: int
    active: CompiledSet | None
    shadow: CompiledSet | None
    #: when this generation was activated (the database's clock), for the activation lag
    activated_at: datetime | None = None


async def fetch_set_version(
    conn: Conn,
    zone_id: str,
    version_id: UUID | str,
    *,
    policy_set_id: UUID | str | None = None,
    live_sets_only: bool = False,
) -> SetVersionRow | None:
    """A set version of the zone with its manifest (None when absent).

    ``policy_set_id`` restricts it to one set; ``live_sets_only`` to sets not archived.
    """
    cur = await conn.execute(
        "SELECT v.id, v.policy_set_id, v.manifest_sha256, pv.id AS policy_version_id,"
        " pv.policy_id, pv.content_sha256, p.archived_at IS NOT NULL AS policy_archived"
        " FROM policy_set_versions v"
        " JOIN policy_sets s ON s.zone_id = v.zone_id AND s.id = v.policy_set_id"
        " JOIN policy_set_version_entries e"
        "  ON e.zone_id = v.zone_id AND e.policy_set_version_id = v.id"
        " JOIN policy_versions pv ON pv.zone_id = e.zone_id AND pv.id = e.policy_version_id"
        " JOIN policies p ON p.zone_id = pv.zone_id AND p.id = pv.policy_id"
        " WHERE v.zone_id = %s AND v.id = %s"
        "  AND (%s::uuid IS NULL OR v.policy_set_id = %s::uuid)"
        "  AND (NOT %s OR s.archived_at IS NULL)"
        " ORDER BY e.position",
        (zone_id, version_id, policy_set_id, policy_set_id, live_sets_only),
    )
    rows = await cur.fetchall()
    if not rows:
        return None
    return SetVersionRow(
        id=str(rows[0]["id"]),
        policy_set_id=str(rows[0]["policy_set_id"]),
        manifest_sha256=rows[0]["manifest_sha256"],
        entries=tuple(
            ManifestEntry(
                policy_id=str(r["policy_id"]),
                policy_version_id=str(r["policy_version_id"]),
                content_sha256=r["content_sha256"],
                policy_archived=r["policy_archived"],
            )
            for r in rows
        ),
    )


def _first_violation(rows: list[dict[str, Any]]) -> RegoContractError | None:
    """The first contract violation among policy-version rows (run in a worker thread: the
    error returned is a fresh one, so no engine of that thread outlives it)."""
    for r in rows:
        try:
            check_contract(r["content"], f"{r['id']}.rego")
        except RegoContractError as exc:
            return RegoContractError(exc.message, exc.detail)
    return None


class PdpRuntime:
    """Zone states and the compiled-policy cache of one process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._zones: dict[str, ZoneState] = {}
        self._policies: dict[str, CompiledPolicy] = {}
        self._loading: dict[str, asyncio.Future[ZoneState | None]] = {}
        #: zone id -> how many times it was forgotten (a load compares before installing)
        self._forgotten: dict[str, int] = {}
        #: called with the zone id after a zone's state is replaced or dropped (OPA long polls)
        self.change_listeners: list[Callable[[str], None]] = []

    # -- reading ---------------------------------------------------------------------------

    def cached(self, zone_id: str) -> ZoneState | None:
        """The installed state of a zone, without touching the database."""
        return self._zones.get(zone_id)

    async def zone(self, zone_id: str) -> ZoneState | None:
        """The zone's state, loaded on first use; None for an unknown or archived zone."""
        state = self._zones.get(zone_id)
        if state is not None:
            return state
        return await self.reload(zone_id)

    def loaded_zones(self) -> dict[str, int]:
        """``zone_id -> generation`` of every installed zone."""
        return {zone_id: state.generation for zone_id, state in self._zones.items()}

    # -- compiling -------------------------------------------------------------------------

    async def compile(
        self, conn: Conn, zone_id: str, row: SetVersionRow, *, check: bool = False
    ) -> CompiledSet:
        """Compile a set version, reusing cached policy versions. With ``check`` (activation)
        the versions not compiled yet are first checked against the whole contract, in a
        worker thread. Raises ``RegoContractError`` naming the version."""
        # Held here: the awaits below let other tasks install states and prune the cache.
        cached = {
            e.policy_version_id: self._policies[e.policy_version_id]
            for e in row.entries
            if e.policy_version_id in self._policies
        }
        missing = [e.policy_version_id for e in row.entries if e.policy_version_id not in cached]
        fresh: dict[str, CompiledPolicy] = {}
        if missing:
            cur = await conn.execute(
                "SELECT id, policy_id, content FROM policy_versions"
                " WHERE zone_id = %s AND id = ANY(%s::uuid[])",
                (zone_id, missing),
            )
            rows = await cur.fetchall()
            if check:
                error = await asyncio.to_thread(_first_violation, rows)
                if error is not None:
                    raise error
            for r in rows:
                version_id = str(r["id"])
                fresh[version_id] = compile_policy(str(r["policy_id"]), version_id, r["content"])
        policies = []
        for entry in row.entries:
            policy = cached.get(entry.policy_version_id) or fresh.get(entry.policy_version_id)
            if policy is None:  # pragma: no cover - the manifest's foreign keys prevent it
                raise RegoContractError(f"{entry.policy_version_id}.rego: version not found")
            policies.append(policy)
        self._policies.update(cached)
        self._policies.update(fresh)
        return compile_set(row.policy_set_id, row.id, row.manifest_sha256, policies)

    # -- installing ------------------------------------------------------------------------

    def install(self, state: ZoneState) -> bool:
        """Swap in ``state`` unless a newer generation is installed; True when swapped."""
        current = self._zones.get(state.zone_id)
        if current is not None and current.generation > state.generation:
            return False
        self._zones[state.zone_id] = state
        zone_state_replaced(current, state)
        self._prune()
        if current is None or current.generation != state.generation:
            self._announce(state.zone_id)
        return True

    def _announce(self, zone_id: str) -> None:
        for listener in self.change_listeners:
            listener(zone_id)

    def forget(self, zone_id: str) -> None:
        """Drop a zone (archived or gone: for good, zone ids are never reused). A load of it
        already running does not install what it read."""
        self._forgotten[zone_id] = self._forgotten.get(zone_id, 0) + 1
        dropped = self._zones.pop(zone_id, None)
        if dropped is not None:
            zone_state_replaced(dropped, None)
            self._prune()
            self._announce(zone_id)

    def _prune(self) -> None:
        """Keep only the compiled policies an installed state uses."""
        used = {
            policy.policy_version_id
            for state in self._zones.values()
            for compiled in (state.active, state.shadow)
            if compiled is not None
            for policy in compiled.policies
        }
        for version_id in [v for v in self._policies if v not in used]:
            del self._policies[version_id]

    # -- loading ---------------------------------------------------------------------------

    async def reload(self, zone_id: str, *, fresh: bool = False) -> ZoneState | None:
        """Load the zone's current state from the database and install it (one load per zone
        at a time: concurrent callers share it).

        ``fresh``: the caller knows of a change committed before it called (an invalidation,
        reconciliation), so a load that had already started may predate it: wait for that
        one, then share or start a load that began after this call.
        """
        pending = self._loading.get(zone_id)
        if pending is not None:
            if not fresh:
                return await asyncio.shield(pending)
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            pending = self._loading.get(zone_id)  # started after this call: fresh enough
            if pending is not None:
                return await asyncio.shield(pending)
        future: asyncio.Future[ZoneState | None] = asyncio.get_running_loop().create_future()
        self._loading[zone_id] = future
        forgotten = self._forgotten.get(zone_id, 0)
        try:
            state = await self._load(zone_id)
            if self._forgotten.get(zone_id, 0) != forgotten:
                state = None  # archived while this load ran: what it read is gone
            if state is None:
                self.forget(zone_id)
            else:
                self.install(state)
                state = self._zones.get(zone_id, state)
            future.set_result(state)
            return state
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[zone_id]

    async def _load(self, zone_id: str) -> ZoneState | None:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT s.active_version_id, s.shadow_version_id, coalesce(s.generation, 0) AS gen,"
                " s.activated_at FROM zones z LEFT JOIN zone_policy_state s ON s.zone_id = z.id"
                " WHERE z.id = %s AND z.archived_at IS NULL",
                (zone_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            active = shadow = None
            if row["active_version_id"] is not None:
                active_row = await fetch_set_version(conn, zone_id, row["active_version_id"])
                active = await self.compile(conn, zone_id, active_row) if active_row else None
            if row["shadow_version_id"] is not None:
                shadow_row = await fetch_set_version(conn, zone_id, row["shadow_version_id"])
                shadow = await self.compile(conn, zone_id, shadow_row) if shadow_row else None
        return ZoneState(zone_id, row["gen"], active, shadow, row["activated_at"])

    async def reconcile(self) -> int:
        """Reload every installed zone whose generation or existence changed; return how many."""
        loaded = self.loaded_zones()
        if not loaded:
            return 0
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT z.id, z.archived_at IS NULL AS live, coalesce(s.generation, 0) AS gen"
                " FROM unnest(%s::text[]) AS q(id) LEFT JOIN zones z ON z.id = q.id"
                " LEFT JOIN zone_policy_state s ON s.zone_id = z.id",
                (list(loaded),),
            )
            rows = await cur.fetchall()
        live = {r["id"]: r["gen"] for r in rows if r["id"] is not None and r["live"]}
        stale = [z for z, gen in loaded.items() if live.get(z) != gen]
        for zone_id in stale:
            await self._reload_logged(zone_id)
        return len(stale)

    async def on_invalidate(self, zone_id: str, generation: int | None) -> None:
        """An invalidation message: reload the zone if it is installed here and older."""
        state = self._zones.get(zone_id)
        if state is None or (generation is not None and state.generation >= generation):
            return
        await self._reload_logged(zone_id)

    async def _reload_logged(self, zone_id: str) -> None:
        try:
            await self.reload(zone_id, fresh=True)
        except Exception as exc:  # keep serving the installed state; the next pass retries
            log.error("zone reload failed", extra={"zone_id": zone_id, "error": repr(exc)})


@asynccontextmanager
async def reconciler_component(runtime: PdpRuntime, interval: float) -> AsyncIterator[None]:
    """Every ``interval`` seconds (``CARACAL_PDP_RECONCILE_SECONDS``; 0 disables), compare
    the installed zones' generations with the database and reload the stale ones."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await runtime.reconcile()
            except Exception as exc:
                log.warning("pdp reconciliation failed", extra={"error": repr(exc)})

    if interval <= 0:
        yield
        return
    async with background(loop(), "pdp-reconciler"):
        yield
