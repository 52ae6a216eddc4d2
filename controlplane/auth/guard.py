"""Admin-token guard: one check for every ``/v1`` route, from the route's declared scope."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from controlplane.http.errors import ApiError
from controlplane.keys.crypto import hash_admin_token
from controlplane.metrics.auth import auth_failed

_BEARER = re.compile(rb"^Bearer ([\x21-\x7e]{1,512})$", re.I)
_LAST_USED_EVERY = timedelta(seconds=60)

#: A route's scope: ``fleet`` routes (OPA's bundle, logs and status) also admit pdp tokens.
Scope = Literal["global", "zone", "fleet", "public"]


@dataclass(frozen=True, slots=True)
class AdminToken:
    """The authenticated caller."""

    id: str
    scope: Literal["global", "zone", "pdp"]
    zone_id: str | None
    expires_at: datetime | None = None


def invalid_token() -> ApiError:
    """401 invalid_admin_token."""
    return ApiError(401, "invalid_admin_token")


def forbidden() -> ApiError:
    """403 forbidden: a pdp token outside the fleet routes of its zone."""
    return ApiError(403, "forbidden", "a pdp token may only call its zone's OPA routes")


def zone_mismatch() -> ApiError:
    """403 admin_token_zone_mismatch."""
    return ApiError(403, "admin_token_zone_mismatch")


async def admin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Authenticate the bearer token and enforce the route's scope (``opt["scope"]``)."""
    asgi_scope = connection.scope
    opt = handler.opt
    scope: Scope = opt.get("scope", "zone")
    if scope == "public" or not asgi_scope["path"].startswith("/v1/"):
        return
    if asgi_scope["method"] == "OPTIONS":  # type: ignore[typeddict-item]
        return  # says which methods exist (Allow), reads nothing: browsers send no token
    headers = asgi_scope["headers"]
    match = _bearer_token(headers)
    if match is None:
        given = any(name == b"authorization" and value.strip() for name, value in headers)
        auth_failed("invalid" if given else "missing")
        raise invalid_token()
    services = asgi_scope["litestar_app"].state.services
    token_sha256 = hash_admin_token(match.group(1).decode("ascii"))
    cached = opt.get("token_cache", False)
    # A fresh cache entry needs no await (the usual case on the hot routes).
    token = services.token_cache.fresh(token_sha256) if cached else None
    if token is None:
        token = await authenticate(services, token_sha256, cached=cached)
    if token is None:
        raise invalid_token()
    wrong_zone = asgi_scope["path_params"].get("zone_id") != token.zone_id
    if token.scope == "pdp" and (scope != "fleet" or wrong_zone):
        auth_failed("forbidden")
        raise forbidden()
    if token.scope == "zone" and (scope == "global" or wrong_zone):
        auth_failed("forbidden")
        raise zone_mismatch()
    # Litestar's ``connection.state`` is a view of this dict (``caller`` reads it back).
    asgi_scope.setdefault("state", {})["admin_token"] = token


def _bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> re.Match[bytes] | None:
    """The first ``Authorization`` header matched against ``Bearer <token>``, read from the
    raw ASGI headers (building Litestar's header multidict cost ~10 µs per request)."""
    for name, value in headers:
        if name == b"authorization":
            return _BEARER.match(value)
    return None


async def authenticate(services: Any, token_sha256: str, *, cached: bool) -> AdminToken | None:
    """The live token with this hash, from the database or, on hot-path routes that opt in
    (``opt={"token_cache": True}``), from the short-lived token cache (one lookup per token
    at a time, refreshed ahead of expiry)."""
    if not cached:
        return await lookup_token(services.db, token_sha256)
    return await services.token_cache.lookup(
        token_sha256, lambda: lookup_token(services.db, token_sha256)
    )


async def lookup_token(db: Any, token_sha256: str) -> AdminToken | None:
    """The live token with this hash (not expired, not revoked), touching ``last_used_at``;
    None (the refusal counted by reason) otherwise. Safe to repeat: a connection that breaks
    under it is replaced and the lookup re-run."""
    return await db.run(lambda conn: _lookup_token(conn, token_sha256))


async def _lookup_token(conn: Any, token_sha256: str) -> AdminToken | None:
    cur = await conn.execute(
        "SELECT id, scope, zone_id, expires_at, revoked_at, last_used_at"
        " FROM admin_tokens WHERE token_sha256 = %s",
        (token_sha256,),
    )
    row = await cur.fetchone()
    if row is None or row["revoked_at"] is not None:
        auth_failed("invalid" if row is None else "revoked")
        return None
    now = datetime.now(UTC)
    if row["expires_at"] is not None and row["expires_at"] <= now:
        auth_failed("expired")
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > _LAST_USED_EVERY:
        await conn.execute(
            "UPDATE admin_tokens SET last_used_at = now() WHERE id = %s", (row["id"],)
        )
    return AdminToken(
        id=str(row["id"]), scope=row["scope"], zone_id=row["zone_id"], expires_at=row["expires_at"]
    )


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> AdminToken:
    """The token the guard authenticated for this request."""
    return connection.scope["state"]["admin_token"]
