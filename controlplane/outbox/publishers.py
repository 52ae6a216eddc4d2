"""Where the relay sends outbox messages: PostgreSQL NOTIFY (always) and Redis Streams.

A publisher raises on failure; the relay then keeps the row for a retry with backoff.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from controlplane.db.pool import Conn
from controlplane.outbox.enqueue import EVENTS_CHANNEL, OutboxMessage, encode_message
from controlplane.settings import Settings

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
NOTIFY_MAX_BYTES = 7999
#: Redis streams are trimmed to about this many entries (XADD MAXLEN ~).
REDIS_STREAM_MAXLEN = 100_000
#: Longest wait for Redis to accept a connection or answer a command.
REDIS_TIMEOUT_SECONDS = 2.0

_json = msgspec.json.Encoder()


class PublishError(Exception):
    """A message could not be published; the row stays for a retry."""


class PublisherUnavailable(PublishError):
    """The destination cannot be reached at all (not this message's fault): the relay does not
    try it again for the rest of the batch."""


class Publisher(Protocol):
    """Sends one message; ``conn`` is the relay's claim transaction."""

    name: str

    async def publish(self, conn: Conn, message: OutboxMessage) -> None: ...

    async def close(self) -> None: ...


class PgNotifyPublisher:
    """``NOTIFY caracal_events, '<message json>'``, sent when the claim transaction commits.

    Because PostgreSQL delivers the notification only at commit, together with the
    ``published_at`` update, a relay killed mid-batch has notified nobody of that batch.
    """

    name = "pg_notify"

    async def publish(self, conn: Conn, message: OutboxMessage) -> None:
        text = encode_message(message)
        if len(text.encode()) > NOTIFY_MAX_BYTES:
            raise PublishError(f"message of {len(text.encode())} bytes exceeds the NOTIFY limit")
        await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, text))

    async def close(self) -> None:
        return None


class RedisStreamPublisher:
    """``XADD <topic> MAXLEN ~ 100000 * id … zone_id … topic … payload … created_at …``."""

    name = "redis_streams"

    def __init__(self, url: str, *, maxlen: int = REDIS_STREAM_MAXLEN) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.maxlen = maxlen
        self.client: Any = aioredis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
            # One try: redis-py's default retries a timeout 3 times (a hung Redis held each
            # XADD, and the relay's claim, ~8 s); the relay retries rows with its own backoff.
            retry=Retry(NoBackoff(), 0),
        )

    async def publish(self, conn: Conn, message: OutboxMessage) -> None:
        import redis

        fields = {
            "id": message.id,
            "zone_id": message.zone_id,
            "topic": message.topic,
            "payload": _json.encode(message.payload).decode(),
            "created_at": message.created_at.isoformat(),
        }
        try:
            await self.client.xadd(message.topic, fields, maxlen=self.maxlen, approximate=True)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise PublisherUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        except redis.RedisError as exc:
            raise PublishError(f"redis: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        await self.client.aclose()


def publishers_for(settings: Settings) -> list[Publisher]:
    """NOTIFY always (the in-process PDPs listen to it); Redis Streams when configured."""
    publishers: list[Publisher] = [PgNotifyPublisher()]
    if settings.redis_url:
        publishers.append(RedisStreamPublisher(settings.redis_url))
    return publishers
