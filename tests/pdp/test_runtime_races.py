"""The PDP runtime under interleavings: a slow step is injected (the database and the engine are
real) so that an invalidation, a cache prune or an archive lands in the middle of a load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from controlplane.db.pool import Database
from controlplane.pdp import runtime as runtime_module
from controlplane.pdp.runtime import PdpRuntime, ZoneState, fetch_set_version
from tests.api.policy_helpers import activate, active_set, create_policy, create_set_version, rego


async def with_runtime(database_url: str, body: Callable[[PdpRuntime], Awaitable[Any]]) -> Any:
    database = Database(database_url, 1, 2)
    await database.open()
    try:
        return await body(PdpRuntime(database))
    finally:
        await database.close()


def held_load(runtime: PdpRuntime) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the runtime's next loads read the database, then wait for ``release``."""
    original = runtime._load
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(zone_id: str) -> ZoneState | None:
        state = await original(zone_id)
        started.set()
        await release.wait()
        return state

    runtime._load = slow  # type: ignore[method-assign]
    return started, release


def test_an_invalidation_during_a_load_is_not_lost(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    z = zone["id"]
    made = active_set(client, z, rego("a"))

    async def body(runtime: PdpRuntime) -> tuple[int, int]:
        before = await runtime.zone(z)
        assert before is not None
        original = runtime._load
        started, release = held_load(runtime)
        reload = asyncio.create_task(runtime.reload(z))  # reads the old generation
        await started.wait()
        await asyncio.to_thread(activate, client, z, made["set"]["id"], made["version"]["id"])
        runtime._load = original  # type: ignore[method-assign]
        invalidation = asyncio.create_task(runtime.on_invalidate(z, before.generation + 1))
        await asyncio.sleep(0.05)
        release.set()
        await reload
        await invalidation
        after = runtime.cached(z)
        assert after is not None
        return before.generation, after.generation

    before, after = asyncio.run(with_runtime(database_url, body))
    assert after == before + 1


def test_a_prune_during_compile_does_not_fail_a_valid_set(
    client: TestClient, zone: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = zone["id"]
    made = active_set(client, z, rego("a"))
    second = create_policy(client, z, rego("b"), name="second")
    wanted = [made["policies"][0]["version"]["id"], second["version"]["id"]]
    version = create_set_version(client, z, made["set"]["id"], wanted)
    check = runtime_module._first_violation

    def slow_check(rows: Any) -> Any:
        time.sleep(0.3)
        return check(rows)

    monkeypatch.setattr(runtime_module, "_first_violation", slow_check)

    async def body(runtime: PdpRuntime) -> int:
        await runtime.zone(z)  # caches the first policy's version

        async def elsewhere() -> None:  # another activation's state, using none of them
            await asyncio.sleep(0.1)
            runtime.install(ZoneState(z, 10**6, None, None))

        task = asyncio.create_task(elsewhere())
        try:
            async with runtime.db.transaction() as conn:
                row = await fetch_set_version(conn, z, version["id"])
                assert row is not None
                compiled = await runtime.compile(conn, z, row, check=True)
        finally:
            await task
        return len(compiled.policies)

    assert asyncio.run(with_runtime(database_url, body)) == 2


def test_a_zone_archived_during_a_load_stays_gone(
    client: TestClient, zone: dict[str, Any], database_url: str
) -> None:
    z = zone["id"]
    active_set(client, z, rego("a"))

    async def body(runtime: PdpRuntime) -> ZoneState | None:
        await runtime.zone(z)
        started, release = held_load(runtime)
        reload = asyncio.create_task(runtime.reload(z))
        await started.wait()
        archived = await asyncio.to_thread(client.delete, f"/v1/zones/{z}")
        assert archived.status_code == 204
        runtime.forget(z)  # what the caracal_zones NOTIFY does
        release.set()
        await reload
        return runtime.cached(z)

    assert asyncio.run(with_runtime(database_url, body)) is None
