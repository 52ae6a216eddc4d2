"""Strict JSON bodies: a wrong type is ``400 invalid_body``, never coerced.

Litestar converts decoded bodies with msgspec's lax mode (``"60"`` would pass as an integer,
``"true"`` as a boolean). This ``before_request`` hook decodes the body strictly against the
handler's ``data`` type first; Litestar's own pass then only sees valid bodies.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler

from controlplane.errors import ApiError, Issue, msgspec_issue

_decoders: dict[HTTPRouteHandler, msgspec.json.Decoder[Any] | None] = {}


def _decoder_for(handler: HTTPRouteHandler) -> msgspec.json.Decoder[Any] | None:
    try:
        return _decoders[handler]
    except KeyError:
        parameter = handler.parsed_fn_signature.parameters.get("data")
        decoder = None if parameter is None else msgspec.json.Decoder(parameter.annotation)
        _decoders[handler] = decoder
        return decoder


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Reject a body that does not decode strictly into the handler's ``data`` type."""
    decoder = _decoder_for(request.route_handler)  # type: ignore[arg-type]
    if decoder is None:
        return
    body = await request.body()
    if not body.strip():
        return  # Litestar answers a missing required body itself (400 invalid_body)
    decode_strictly(decoder, body)


def decode_strictly(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``decoder.decode(body)``; 400 invalid_body (with the issue) if it does not decode."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_body", issues=[msgspec_issue(str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(
            400, "invalid_body", issues=[Issue(path=[], message=f"malformed JSON: {exc}")]
        ) from None
