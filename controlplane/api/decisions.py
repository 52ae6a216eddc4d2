"""Decisions: ``POST /v1/zones/{zoneId}/decisions`` and ``…/decisions/batch`` — the embedded
PDP over HTTP.

Each route decodes the body, runs ``controlplane.decisions.pipeline`` and encodes its answer
(``answer_decision`` / ``answer_batch``, the same functions whichever way the request came
in); everything else happens in the pipeline.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from litestar import Controller, Request, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import RawBody
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json, get_serializer

from controlplane.api.common import actor_id
from controlplane.decisions import pipeline
from controlplane.decisions.input_limits import check_batch_input_limits, check_input_limits
from controlplane.decisions.pipeline import MAX_BATCH_INPUTS, DecisionResponse
from controlplane.http.errors import MISSING_BODY, error_responses, invalid_body
from controlplane.http.request_context import current_request_id
from controlplane.http.strict_input import decode_strictly
from controlplane.metrics.decisions import count_decision, decision_answered, decision_clock
from controlplane.services import Services


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/decisions body."""

    input: dict[str, Any]
    sign: bool = False

    stored: ClassVar[bool] = False  # the input may hold any JSON (not stored)
    example: ClassVar[dict[str, Any]] = {
        "input": {"action": "orders:read", "subject": {"id": "user-1"}},
        "sign": False,
    }


class BatchDecisionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/decisions/batch body: 1 to 100 decision inputs."""

    inputs: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1, max_length=MAX_BATCH_INPUTS)]
    sign: bool = False

    stored: ClassVar[bool] = False  # the inputs may hold any JSON (not stored)
    example: ClassVar[dict[str, Any]] = {
        "inputs": [
            {"action": "orders:read", "subject": {"id": "user-1"}},
            {"action": "orders:write", "subject": {"id": "user-1"}},
        ],
    }


class BatchDecisionResponse(msgspec.Struct):
    """200 body of a batch: one decision per input, in input order."""

    decisions: list[DecisionResponse]


T = TypeVar("T")
_request_decoder = msgspec.json.Decoder(DecisionRequest)
_batch_decoder = msgspec.json.Decoder(BatchDecisionRequest)


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """The body decoded strictly, once (``"sign": "true"`` is 400 invalid_body, never coerced);
    the errors are those Litestar and ``controlplane.http.strict_input`` give on other routes."""
    if not body:
        raise invalid_body(MISSING_BODY)
    return decode_strictly(decoder, body)


# The handlers return their body already encoded (Litestar's serializer, the same bytes and
# headers its Response would give; ``responses`` keeps the documented schemas): building
# and rendering a Response per decision cost ~25 us of the hot path.
_serializer = get_serializer(None)


async def answer_decision(services: Services, zone_id: str, body: bytes, actor: str) -> bytes:
    """The encoded 200 body of ``POST …/decisions`` (errors raise)."""
    started = decision_clock()
    data = decode_body(_request_decoder, body)
    check_input_limits(data.input, body)
    response = await pipeline.decide(
        services,
        zone_id,
        data.input,
        request_id=current_request_id(),
        actor_id=actor,
        sign=data.sign,
    )
    decision_answered(response.decision, started)
    return encode_json(response, _serializer)


async def answer_batch(services: Services, zone_id: str, body: bytes, actor: str) -> bytes:
    """The encoded 200 body of ``POST …/decisions/batch`` (errors raise)."""
    data = decode_body(_batch_decoder, body)
    check_batch_input_limits(data.inputs, body)
    decisions = await pipeline.decide_batch(
        services,
        zone_id,
        data.inputs,
        request_id=current_request_id(),
        actor_id=actor,
        sign=data.sign,
    )
    for decision in decisions:
        count_decision(decision.decision, "batch")
    return encode_json(BatchDecisionResponse(decisions), _serializer)


def _documents_request_body(data: DecisionRequest) -> None:
    """Never called: a dependency the handler does not take, so that the OpenAPI document
    shows ``DecisionRequest`` as the request body (Litestar reads a dependency's ``data``)
    while the handler decodes the raw body itself (``decode_body``)."""


def _documents_batch_body(data: BatchDecisionRequest) -> None:
    """Never called: documents ``BatchDecisionRequest`` as ``_documents_request_body`` does."""


#: Every answer a decision route can give besides 200, in the contract's envelope.
_ERRORS = error_responses(
    {
        400: "invalid_body (the body, or an input's session); invalid_query",
        401: "invalid_admin_token",
        403: "admin_token_zone_mismatch",
        404: "zone_not_found",
        409: "no_active_policy_set",
        413: "payload_too_large (over 1 MiB)",
        500: "internal_error",
        503: "audit_unavailable: the decision could not be recorded; retry",
    }
)
_OK = "Request fulfilled, document follows"


class DecisionController(Controller):
    """The decision endpoints (zone scope).

    The service answers these two routes through a fast path in front of Litestar
    (``controlplane.http.fast_path``, ``opt["fast_path"]``) that runs the same guard, the
    same ``answer_*`` function and the same exception handlers; the handlers below answer
    what it passes on (and document the routes)."""

    path = "/v1/zones/{zone_id:str}/decisions"
    tags = ["decisions"]
    # The handlers read the Services from the app state (as the guard does) rather than by
    # dependency injection: Litestar's injection costs ~15 us per request on this hot path.

    @post(
        "/",
        status_code=200,
        opt={"token_cache": True, "fast_path": answer_decision},
        dependencies={"documented_body": Provide(_documents_request_body, sync_to_thread=False)},
        responses={
            200: ResponseSpec(DecisionResponse, generate_examples=False, description=_OK),
            **_ERRORS,
        },
    )
    async def decide(self, request: Request, zone_id: str, body: RawBody) -> ASGIResponse:
        """Evaluate the zone's active policy set for ``input``."""
        services: Services = request.app.state.services
        encoded = await answer_decision(services, zone_id, body, actor_id(request))
        return ASGIResponse(body=encoded, media_type="application/json")

    @post(
        "/batch",
        status_code=200,
        opt={"token_cache": True, "fast_path": answer_batch},
        dependencies={"documented_body": Provide(_documents_batch_body, sync_to_thread=False)},
        responses={
            200: ResponseSpec(BatchDecisionResponse, generate_examples=False, description=_OK),
            **_ERRORS,
        },
    )
    async def decide_batch(self, request: Request, zone_id: str, body: RawBody) -> ASGIResponse:
        """Evaluate the zone's active policy set for each of ``inputs`` (1 to 100), in order,
        against the same active set; every decision is audited before the answer."""
        services: Services = request.app.state.services
        encoded = await answer_batch(services, zone_id, body, actor_id(request))
        return ASGIResponse(body=encoded, media_type="application/json")
