"""The process-wide objects handlers use, kept on ``app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.db.pool import Database
from controlplane.keys.crypto import Kek, SecretHasher
from controlplane.settings import Settings


@dataclass
class Services:
    """Settings, database pool, key material and runtime state of one process."""

    settings: Settings
    db: Database
    kek: Kek
    hasher: SecretHasher
    draining: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
