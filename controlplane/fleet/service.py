"""The fleet parts of one process: the long-poll watch and the bundle cache, and serving the
zone's active bundle with ETag and long polling."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from controlplane.db.pool import Database
from controlplane.errors import NotFound
from controlplane.fleet.bundle import Bundle, BundleCache, bundle_etag
from controlplane.fleet.longpoll import ZoneWatch
from controlplane.keys.crypto import Kek
from controlplane.pdp.runtime import PdpRuntime, ZoneState

__all__ = ["BundleAnswer", "Fleet", "etag_matches", "serve_active_bundle"]


@dataclass
class Fleet:
    """Per-process fleet state: the PDP runtime it serves from, held requests, bundles."""

    runtime: PdpRuntime
    watch: ZoneWatch
    bundles: BundleCache

    @classmethod
    def watching(cls, runtime: PdpRuntime, db: Database, kek: Kek) -> Fleet:
        """Fleet state whose held requests wake on every change of ``runtime``'s zones."""
        fleet = cls(runtime, ZoneWatch(), BundleCache(db, kek))
        runtime.change_listeners.append(fleet.watch.changed)
        return fleet


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` value names ``etag`` (weak or strong, or ``*``)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


@dataclass(frozen=True, slots=True)
class BundleAnswer:
    """200 with ``bundle``, or 304 (``bundle`` None) with ``etag``."""

    etag: str
    bundle: Bundle | None


async def _zone_state(runtime: PdpRuntime, zone_id: str) -> ZoneState:
    state = runtime.cached(zone_id)
    if state is None and "\x00" not in zone_id:
        state = await runtime.zone(zone_id)
    if state is None:
        raise NotFound("zone_not_found")
    return state


async def serve_active_bundle(
    fleet: Fleet, zone_id: str, if_none_match: str | None, wait_seconds: int
) -> BundleAnswer:
    """The zone's active bundle, or 304 when ``If-None-Match`` names it — held up to
    ``wait_seconds`` for a change first (OPA's long polling). 404 ``zone_not_found`` /
    ``no_active_policy_set``."""
    state = await _zone_state(fleet.runtime, zone_id)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        if state.active is None:
            raise NotFound("no_active_policy_set", "activate a policy-set version first")
        etag = bundle_etag(zone_id, state.active.policy_set_version_id)
        if not etag_matches(if_none_match, etag):
            return BundleAnswer(etag, await fleet.bundles.get(zone_id, state.active))
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return BundleAnswer(etag, None)
        await fleet.watch.wait(zone_id, remaining)
        state = await _zone_state(fleet.runtime, zone_id)
