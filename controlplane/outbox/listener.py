"""One LISTEN connection per process, dispatching PostgreSQL notifications.

* ``caracal_events`` (outbox messages published by the relay): a
  ``caracal.policy.invalidate`` message reloads that zone in the PDP runtime.
* ``caracal_admin_tokens`` (token id, from a trigger): evicts the token from the token cache.
* ``caracal_zones`` (zone id, from a trigger on archival): drops the zone from the PDP.

After every (re)connect the token cache is cleared and the PDP reconciles, since messages
sent while the connection was down are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import psycopg

from controlplane.auth.token_cache import TokenCache
from controlplane.background import background
from controlplane.outbox.enqueue import EVENTS_CHANNEL, TOPIC_POLICY_INVALIDATE, decode_message
from controlplane.pdp.runtime import PdpRuntime

log = logging.getLogger("controlplane.listener")

TOKENS_CHANNEL = "caracal_admin_tokens"
ZONES_CHANNEL = "caracal_zones"
_RETRY_SECONDS = 0.5


class EventListener:
    """Listens on the event channels and applies each notification to this process."""

    def __init__(self, url: str, runtime: PdpRuntime, tokens: TokenCache) -> None:
        self.url = url
        self.runtime = runtime
        self.tokens = tokens

    async def run(self) -> None:
        """Forever: connect, LISTEN, dispatch; reconnect after a failure."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                )
                async with conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {TOKENS_CHANNEL}")
                    await conn.execute(f"LISTEN {ZONES_CHANNEL}")
                    self.tokens.clear()
                    await self.runtime.reconcile()
                    async for notify in conn.notifies():
                        await self.dispatch(notify.channel, notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener failed; reconnecting", extra={"error": repr(exc)})
            await asyncio.sleep(_RETRY_SECONDS)

    async def dispatch(self, channel: str, payload: str) -> None:
        """Apply one notification (bad payloads are logged and dropped)."""
        if channel == TOKENS_CHANNEL:
            self.tokens.evict(payload)
            return
        if channel == ZONES_CHANNEL:
            self.runtime.forget(payload)
            return
        try:
            message = decode_message(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable event", extra={"channel": channel, "error": str(exc)})
            return
        if message.topic == TOPIC_POLICY_INVALIDATE:
            generation = message.payload.get("generation")
            await self.runtime.on_invalidate(
                message.zone_id, generation if isinstance(generation, int) else None
            )


@asynccontextmanager
async def listener_component(
    url: str, runtime: PdpRuntime, token_cache: TokenCache
) -> AsyncIterator[None]:
    """Run the listener for the life of the process."""
    listener = EventListener(url, runtime, token_cache)
    async with background(listener.run(), "event-listener"):
        yield
