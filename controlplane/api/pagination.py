"""Keyset pagination shared by the ``{rows, next_cursor}`` lists (sessions, grants, audit).

A list is ordered ``(<time>, id) DESC``; a page is fetched with ``limit + 1`` rows and the
next page starts strictly below the last row returned. The cursor is that position,
opaque to clients: base64url (no padding) of

    version (1 byte) || epoch microseconds (8 bytes, signed big-endian) || id (UTF-8)
    || HMAC-SHA256(key, list || zone || payload)[:16]

The HMAC key is derived from the KEK, so a tampered cursor, one made for another list or
zone, or one not made by this deployment answers ``400 invalid_cursor``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar.params import Parameter

from controlplane.http.errors import ApiError
from controlplane.keys.crypto import Kek

__all__ = [
    "CursorParam",
    "LimitParam",
    "Position",
    "TimeQuery",
    "UuidQuery",
    "decode_cursor",
    "encode_cursor",
    "next_page",
]

_VERSION = 1
_MAC_SIZE = 16
_HEAD = struct.Struct(">Bq")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The longest cursor the lists issue: a session id of 512 four-byte characters, with the zone
# id, time and MAC, encodes to ~2,800 characters.
_MAX_CURSOR_CHARS = 4096

LimitParam = Annotated[
    int,
    Parameter(ge=1, le=1000, description="page size, 1-1000"),
]
CursorParam = Annotated[
    str | None,
    Parameter(
        description="opaque cursor from a previous page's next_cursor",
        schema_extra={"pattern": "^[A-Za-z0-9_-]+$", "maxLength": _MAX_CURSOR_CHARS},
    ),
]
#: Optional query filters the route parses itself (400 invalid_query when they do not parse).
UuidQuery = Annotated[str | None, Parameter(schema_extra={"format": "uuid"})]
TimeQuery = Annotated[
    str | None, Parameter(description="RFC 3339 timestamp", schema_extra={"format": "date-time"})
]


class Position(msgspec.Struct, frozen=True):
    """A keyset position: the last row's time and id."""

    at: datetime
    id: str


@lru_cache(maxsize=8)
def _key(kek: Kek) -> bytes:
    return hmac.new(kek.key, b"caracal-cursor-v1", hashlib.sha256).digest()


def _mac(kek: Kek, kind: str, zone_id: str, payload: bytes) -> bytes:
    context = f"{kind}\x00{zone_id}\x00".encode()
    return hmac.new(_key(kek), context + payload, hashlib.sha256).digest()[:_MAC_SIZE]


def _micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_cursor(kek: Kek, kind: str, zone_id: str, position: Position) -> str:
    """The opaque cursor for ``position`` in list ``kind`` of ``zone_id``."""
    payload = _HEAD.pack(_VERSION, _micros(position.at)) + position.id.encode()
    token = payload + _mac(kek, kind, zone_id, payload)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def invalid_cursor() -> ApiError:
    """400 invalid_cursor."""
    return ApiError(400, "invalid_cursor", "the cursor was not issued by this list")


def decode_cursor(
    kek: Kek, kind: str, zone_id: str, cursor: str, *, uuid_id: bool = False
) -> Position:
    """The position in ``cursor``; 400 invalid_cursor unless this server made it for this list
    (and, with ``uuid_id``, unless its id is a UUID, as the list's ids are)."""
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS or not _B64URL.match(cursor):
        raise invalid_cursor()
    if len(cursor) % 4 == 1:
        raise invalid_cursor()
    token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    if base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii") != cursor:
        raise invalid_cursor()  # non-canonical: stray bits in the last character
    if len(token) < _HEAD.size + 1 + _MAC_SIZE:
        raise invalid_cursor()
    payload, mac = token[:-_MAC_SIZE], token[-_MAC_SIZE:]
    if not hmac.compare_digest(mac, _mac(kek, kind, zone_id, payload)):
        raise invalid_cursor()
    version, micros = _HEAD.unpack_from(payload)
    if version != _VERSION:
        raise invalid_cursor()
    try:
        row_id = payload[_HEAD.size :].decode()
        at = _EPOCH + timedelta(microseconds=micros)
        if uuid_id:
            UUID(row_id)
    except (UnicodeDecodeError, OverflowError, ValueError):
        raise invalid_cursor() from None
    return Position(at=at, id=row_id)


def next_page(
    kek: Kek,
    kind: str,
    zone_id: str,
    rows: Sequence[dict[str, Any]],
    limit: int,
    time_column: str,
) -> tuple[Sequence[dict[str, Any]], str | None]:
    """Split a ``limit + 1`` fetch into the page and the cursor after its last row."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    last = page[-1]
    return page, encode_cursor(kek, kind, zone_id, Position(last[time_column], str(last["id"])))
