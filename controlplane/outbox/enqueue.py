"""The transactional outbox: ``enqueue`` a message in the caller's transaction.

The relay (``controlplane/relay.py``) publishes each row later, at least once, with the
outbox id in the message so consumers can drop duplicates (docs/outbox.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from controlplane.db.pool import Conn

TOPIC_POLICY_INVALIDATE = "caracal.policy.invalidate"
TOPIC_SESSION_REVOKE = "caracal.session.revoke"

#: PostgreSQL channel the NOTIFY publisher sends messages on (what in-process PDPs listen to).
EVENTS_CHANNEL = "caracal_events"
#: PostgreSQL channel the insert trigger wakes relays on (empty payload).
WAKEUP_CHANNEL = "caracal_outbox"


class OutboxMessage(msgspec.Struct, frozen=True):
    """One message as every publisher sends it."""

    id: str
    zone_id: str
    topic: str
    payload: dict[str, Any]
    created_at: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(OutboxMessage)


def encode_message(message: OutboxMessage) -> str:
    """The message as compact JSON text."""
    return _encoder.encode(message).decode()


def decode_message(text: str | bytes) -> OutboxMessage:
    """Parse a message; raises ``msgspec.DecodeError``/``ValidationError`` on garbage."""
    return _decoder.decode(text)


async def enqueue(conn: Conn, *, zone_id: str, topic: str, payload: dict[str, Any]) -> str:
    """Write one outbox row in the caller's transaction; return its id."""
    outbox_id = uuid7()
    await conn.execute(
        "INSERT INTO outbox (zone_id, id, topic, payload) VALUES (%s, %s, %s, %s)",
        (zone_id, outbox_id, topic, Jsonb(payload)),
    )
    return str(outbox_id)
