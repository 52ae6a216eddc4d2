"""The process-wide objects handlers use, kept on ``app.state.services`` (built by
``controlplane.app.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.audit.decision_events import DecisionAuditSink
from controlplane.auth.token_cache import TokenCache
from controlplane.db.pool import Database
from controlplane.fleet.service import Fleet
from controlplane.keys.crypto import Kek, SecretHasher
from controlplane.pdp.runtime import PdpRuntime
from controlplane.settings import Settings


@dataclass
class Services:
    """Settings, database pool, key material and runtime state of one process."""

    settings: Settings
    db: Database
    kek: Kek
    hasher: SecretHasher
    #: the zones' compiled policy sets, evaluated in process
    runtime: PdpRuntime
    #: the decision audit log's group-commit writer(s)
    audit_writer: DecisionAuditSink
    #: recently verified admin tokens
    token_cache: TokenCache
    #: OPA fleets: held bundle requests and built bundles
    fleet: Fleet
    draining: bool = False
