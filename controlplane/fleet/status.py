"""OPA status reports (``POST …/opa/status``) and the zone's live instances.

OPA's status plugin posts ``{labels: {id, version, …}, bundles: {name: {active_revision,
last_successful_activation, last_successful_download, code, message, errors, …}}, plugins,
metrics, …}`` whenever a bundle activates or a plugin changes state. The latest report of
each instance (``labels.id``) is kept; ``GET …/pdp-instances`` lists the instances heard from
within ``CARACAL_PDP_INSTANCE_TTL_SECONDS`` with ``in_sync`` = their active revision is the
zone's active set version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from controlplane.db.pool import Conn
from controlplane.errors import Invalid
from controlplane.keys.secret_fields import redact

__all__ = ["MAX_INSTANCE_ID", "PdpInstance", "check_report", "list_instances", "store_report"]

#: Longest ``labels.id`` accepted.
MAX_INSTANCE_ID = 200
#: Report members kept with the row (``metrics`` can be large and says nothing of the bundle).
_KEPT = ("labels", "bundles", "plugins", "decision_logs", "discovery")


class PdpInstance(msgspec.Struct):
    """One OPA instance of the zone, as its latest status report describes it."""

    instance_id: str
    opa_version: str | None
    active_revision: str | None
    in_sync: bool
    last_seen_at: datetime
    last_successful_activation: datetime | None
    bundle_error: dict[str, Any] | None


def check_report(report: Any) -> dict[str, Any]:
    """The decoded report, an object with a usable ``labels.id``; else ``Invalid``."""
    if not isinstance(report, dict):
        raise Invalid.body("expected a JSON object (OPA's status report)")
    labels = report.get("labels")
    instance_id = labels.get("id") if isinstance(labels, dict) else None
    if not isinstance(instance_id, str) or not 0 < len(instance_id) <= MAX_INSTANCE_ID:
        raise Invalid.body(
            f"labels.id must be a string of 1 to {MAX_INSTANCE_ID} characters", ["labels", "id"]
        )
    if "\x00" in instance_id:
        raise Invalid.body("labels.id must not contain NUL", ["labels", "id"])
    return report


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        return None
    # Go's zero time (a bundle never activated) is "0001-01-01T00:00:00Z".
    return parsed if parsed.tzinfo is not None and parsed.year > 1 else None


def _text(value: Any) -> str | None:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else None


def _bundle(report: dict[str, Any], zone_versions: set[str]) -> dict[str, Any]:
    """The status of the bundle this zone serves: the one whose active revision is a set
    version of the zone, else the first by name."""
    bundles = report.get("bundles")
    if not isinstance(bundles, dict) or not bundles:
        return {}
    statuses = [bundles[name] for name in sorted(bundles) if isinstance(bundles[name], dict)]
    for status in statuses:
        if status.get("active_revision") in zone_versions:
            return status
    return statuses[0] if statuses else {}


def _bundle_error(status: dict[str, Any]) -> dict[str, Any] | None:
    code = status.get("code")
    if not code:
        return None
    return {"code": code, "message": status.get("message"), "errors": status.get("errors")}


async def store_report(conn: Conn, zone_id: str, report: dict[str, Any]) -> None:
    """Keep ``report`` as the latest of its instance."""
    labels = report["labels"]
    revisions = [
        s.get("active_revision")
        for s in (report.get("bundles") or {}).values()
        if isinstance(s, dict) and isinstance(s.get("active_revision"), str)
    ]
    known: set[str] = set()
    if revisions:
        cur = await conn.execute(
            "SELECT id::text AS id FROM policy_set_versions"
            " WHERE zone_id = %s AND id::text = ANY(%s::text[])",
            (zone_id, revisions),
        )
        known = {row["id"] for row in await cur.fetchall()}
    bundle = _bundle(report, known)
    kept = redact({k: report[k] for k in _KEPT if k in report})
    error = _bundle_error(bundle)
    await conn.execute(
        "INSERT INTO pdp_instances (zone_id, instance_id, opa_version, active_revision,"
        " last_successful_activation, bundle_error, report_json, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
        " ON CONFLICT (zone_id, instance_id) DO UPDATE SET opa_version = EXCLUDED.opa_version,"
        " active_revision = EXCLUDED.active_revision,"
        " last_successful_activation = EXCLUDED.last_successful_activation,"
        " bundle_error = EXCLUDED.bundle_error, report_json = EXCLUDED.report_json,"
        " last_seen_at = now()",
        (
            zone_id,
            labels["id"],
            _text(labels.get("version")),
            _text(bundle.get("active_revision")),
            _timestamp(bundle.get("last_successful_activation")),
            Jsonb(error) if error is not None else None,
            Jsonb(kept),
        ),
    )


async def list_instances(conn: Conn, zone_id: str, ttl_seconds: int) -> list[PdpInstance]:
    """The instances heard from within ``ttl_seconds``, newest report first."""
    cur = await conn.execute(
        "SELECT i.instance_id, i.opa_version, i.active_revision, i.last_seen_at,"
        " i.last_successful_activation, i.bundle_error,"
        " coalesce(i.active_revision = s.active_version_id::text, false) AS in_sync"
        " FROM pdp_instances i LEFT JOIN zone_policy_state s ON s.zone_id = i.zone_id"
        " WHERE i.zone_id = %s AND i.last_seen_at > now() - make_interval(secs => %s)"
        " ORDER BY i.last_seen_at DESC, i.instance_id",
        (zone_id, ttl_seconds),
    )
    return [PdpInstance(**row) for row in await cur.fetchall()]
