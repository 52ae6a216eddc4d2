"""Ids made on the decision hot path: request ids and decision audit event ids.

UUIDv7 strings from ``uuid-utils`` (Rust): ~0.5 µs each, where ``uuid6.uuid7`` takes 3-8 µs
(it reads the operating system's random source once per id, and builds a Python UUID).
Elsewhere the service keeps ``uuid6.uuid7``: the cost only matters per decision.
"""

from __future__ import annotations

from uuid_utils import uuid7


def new_id() -> str:
    """A fresh UUIDv7, as its canonical string."""
    return str(uuid7())
