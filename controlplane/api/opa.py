"""OPA fleets [ours] (spec/opa-fleet.md): the routes stock OPA servers call, the bundle key and
the zone's instances. The work is in ``controlplane.fleet``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.response import Response

from controlplane.api.common import actor_id, services_of
from controlplane.fleet.bundle import BUNDLE_MEDIA_TYPE
from controlplane.fleet.decision_logs import (
    MAX_EVENTS,
    MAX_GZIP_BYTES,
    check_events,
    inflate,
    store_events,
)
from controlplane.fleet.deep_events import CUT_DEPTH, MAX_CUT_BYTES, chunk_depth, cut_too_deep
from controlplane.fleet.longpoll import prefer_wait
from controlplane.fleet.service import serve_active_bundle
from controlplane.fleet.signing import ALGORITHM
from controlplane.fleet.status import (
    MAX_INSTANCE_ID,
    PdpInstance,
    check_report,
    list_instances,
    store_report,
)
from controlplane.http.errors import error_responses, invalid_body
from controlplane.http.openapi import DocumentedBody
from controlplane.http.strict_input import TooDeepToDecode, decode_strictly
from controlplane.json_depth import MAX_DEPTH
from controlplane.registry.zones import require_zone
from controlplane.services import Services

_ERRORS = {
    400: "invalid_body: the body is not what OPA sends, or is over the limits",
    401: "invalid_admin_token",
    403: "forbidden (a pdp token outside its zone's OPA routes) or admin_token_zone_mismatch",
    404: "zone_not_found",
    503: "the database is unavailable",
}


def _errors(*statuses: int, **overrides: str) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer (the contract's envelope)."""
    described = {**_ERRORS, **{int(k.removeprefix("s")): v for k, v in overrides.items()}}
    return error_responses({status: described[status] for status in statuses})


async def _decoded_events(text: bytes) -> tuple[bytes, list[Any], bool]:
    """The upload's JSON, its events, and whether an event may nest deeper than 64 levels
    (``holds_deep_events``). An upload of at most ``MAX_CUT_BYTES`` nesting deeper than
    ``CUT_DEPTH`` (or than the decoder goes) is cut first, in a thread (``cut_too_deep``),
    and the JSON is then the cut one. 400 for malformed JSON, or when too deep to decode and
    over ``MAX_CUT_BYTES``."""
    try:
        events = check_events(decode_strictly(_ANY, text, max_depth=None))
        depth = chunk_depth(text)  # one scan for both bounds
        if depth <= CUT_DEPTH or len(text) > MAX_CUT_BYTES:
            return text, events, depth > MAX_DEPTH + 1
    except TooDeepToDecode:
        if len(text) > MAX_CUT_BYTES:
            raise
    cut = await asyncio.to_thread(cut_too_deep, text)
    return cut, check_events(decode_strictly(_ANY, cut, max_depth=None)), True


#: The bodies OPA sends, for the OpenAPI document (the routes decode and check them in code;
#: either may be gzip-encoded, ``Content-Encoding: gzip``).
DECISION_LOGS_BODY = Annotated[list[Any], msgspec.Meta(max_length=MAX_EVENTS)]
DECISION_LOGS_EXAMPLE = [
    {
        "decision_id": "4ca636c1-55e4-417a-b1d8-4aceb67960d1",
        "timestamp": "2026-01-01T00:00:00Z",
        "path": "caracal/authz/result",
        "result": {"allow": True},
    }
]


class StatusLabels(msgspec.Struct):
    """``labels`` of OPA's status report: ``id`` names the instance."""

    id: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_INSTANCE_ID, pattern="^[^\\x00]*$")
    ]


class StatusReport(msgspec.Struct):
    """OPA's status report (its other fields are kept as sent)."""

    labels: StatusLabels

    stored: ClassVar[bool] = False  # the report is kept as sent (NUL cleaned)
    example: ClassVar[dict[str, Any]] = {
        "labels": {"id": "opa-1", "version": "0.70.0"},
        "bundles": {"caracal": {"active_revision": "1"}},
    }


class BundleKey(msgspec.Struct):
    """The zone's bundle-verification key, for OPA's ``keys`` section."""

    kid: str
    algorithm: str
    key: str


async def _read_capped(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The raw body, 400 invalid_body as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise invalid_body(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_ANY = msgspec.json.Decoder()


def _gzipped(request: Request[Any, Any, Any]) -> bool:
    return "gzip" in request.headers.get("content-encoding", "").lower()


class OpaController(Controller):
    """Bundle, decision logs and status for OPA servers of a zone."""

    path = "/v1/zones/{zone_id:str}/opa"
    tags = ["opa"]
    dependencies = {"services": Provide(services_of, sync_to_thread=False)}

    @get(
        "/bundles/active",
        opt={"scope": "fleet", "token_cache": True},
        media_type=BUNDLE_MEDIA_TYPE,
        responses={
            200: ResponseSpec(
                bytes,
                description="The signed bundle (gzipped tarball), with an ETag header",
                media_type=BUNDLE_MEDIA_TYPE,
                generate_examples=False,
            ),
            304: ResponseSpec(None, description="If-None-Match names the current bundle"),
            **_errors(
                401,
                403,
                404,
                503,
                s404="zone_not_found, or no_active_policy_set (OPA keeps its last bundle)",
            ),
        },
    )
    async def active_bundle(
        self, request: Request[Any, Any, Any], zone_id: str, services: Services
    ) -> Response[bytes]:
        """The zone's active policy set as an OPA bundle; ``Prefer: wait=N`` long-polls."""
        answer = await serve_active_bundle(
            services.fleet,
            zone_id,
            request.headers.get("if-none-match"),
            prefer_wait(request.headers.get("prefer")),
        )
        headers = {"ETag": answer.etag}
        if answer.bundle is None:
            return Response(b"", status_code=304, headers=headers, media_type=BUNDLE_MEDIA_TYPE)
        return Response(answer.bundle.body, headers=headers, media_type=BUNDLE_MEDIA_TYPE)

    @get(
        "/bundle-key",
        opt={"scope": "public"},
        responses=_errors(404, 503),
    )
    async def bundle_key(self, zone_id: str, services: Services) -> BundleKey:
        """The public key OPA verifies the zone's bundles with (public, like the JWKS)."""
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
        key = await services.fleet.bundles.signing_key(zone_id)
        return BundleKey(kid=key.kid, algorithm=ALGORITHM, key=key.public_pem)

    @post(
        "/logs",
        status_code=204,
        opt={
            "scope": "fleet",
            "token_cache": True,
            "body": DocumentedBody(DECISION_LOGS_BODY, DECISION_LOGS_EXAMPLE),
        },
        request_max_body_size=None,
        responses={
            204: ResponseSpec(
                None,
                description="Stored (X-Caracal-Skipped: events without decision_id/timestamp)",
            ),
            **_errors(400, 401, 403, 404, 503),
        },
    )
    async def decision_logs(
        self, request: Request[Any, Any, Any], zone_id: str, services: Services
    ) -> Response[None]:
        """OPA's decision-log upload (gzip JSON array) into the zone's audit log."""
        body = await _read_capped(request, MAX_GZIP_BYTES)
        # Malformed: 400. Nested deeper than 64 levels: stored, too-deep parts summarised (one
        # deep event must not refuse its chunk, which OPA would retry forever).
        text, events, deep = await _decoded_events(inflate(body, _gzipped(request)))
        has_nul = b"\\u0000" in text  # jsonb refuses NUL: such events are cleaned first
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            result = await store_events(
                conn, zone_id, actor_id(request), events, has_nul=has_nul, deep=deep
            )
        return Response(None, status_code=204, headers={"X-Caracal-Skipped": str(result.skipped)})

    @post(
        "/status",
        status_code=204,
        opt={
            "scope": "fleet",
            "token_cache": True,
            "body": DocumentedBody(StatusReport, StatusReport.example),
        },
        request_max_body_size=None,
        responses={
            204: ResponseSpec(None, description="Stored"),
            **_errors(400, 401, 403, 404, 503),
        },
    )
    async def status(
        self, request: Request[Any, Any, Any], zone_id: str, services: Services
    ) -> None:
        """OPA's status report: kept as the latest of its instance."""
        body = await _read_capped(request, MAX_GZIP_BYTES)
        report = check_report(decode_strictly(_ANY, inflate(body, _gzipped(request))))
        async with services.db.transaction() as conn:
            await require_zone(conn, zone_id)
            await store_report(conn, zone_id, report)


@get(
    "/v1/zones/{zone_id:str}/pdp-instances",
    tags=["opa"],
    dependencies={"services": Provide(services_of, sync_to_thread=False)},
    responses=_errors(401, 403, 404, 503),
)
async def pdp_instances(zone_id: str, services: Services) -> list[PdpInstance]:
    """The zone's OPA instances seen within ``CARACAL_PDP_INSTANCE_TTL_SECONDS``, newest
    report first; ``in_sync``: running the zone's active set version."""
    async with services.db.transaction() as conn:
        await require_zone(conn, zone_id)
        return await list_instances(conn, zone_id, services.settings.pdp_instance_ttl_seconds)
