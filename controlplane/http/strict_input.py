"""Strict request input: nothing is coerced, nothing unstorable gets through.

Litestar converts decoded bodies and query values with msgspec's lax mode (``"60"`` would
pass as an integer, ``"true"`` as a boolean, ``?limit=1e2`` as 100). This ``before_request``
hook runs for every route, before Litestar's own parsing:

- query values: one holding a NUL character (which PostgreSQL cannot store or compare) is
  ``400 invalid_query`` at its name, and an integer parameter must be written as one
  (``-?[0-9]+``) — Litestar then checks its range as usual;
- the body is decoded strictly against the handler's ``data`` type (``400 invalid_body``),
  and may nest at most ``MAX_DEPTH`` levels (``controlplane.json_depth``); Litestar's own
  pass then only sees valid bodies.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler

from controlplane.http.errors import ApiError, Issue, invalid_query, msgspec_issue
from controlplane.json_depth import MAX_DEPTH, TOO_DEEP_TO_DECODE, nests_deeper_than


class _HandlerInput(typing.NamedTuple):
    """What the hook needs to know about one handler, worked out once."""

    decoder: msgspec.json.Decoder[Any] | None
    integer_queries: frozenset[str]


_handlers: dict[HTTPRouteHandler, _HandlerInput] = {}
_INTEGER = re.compile(r"-?[0-9]+")


def _is_integer(annotation: Any) -> bool:
    """``int``, ``int | None`` or an ``Annotated`` form of either."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_integer(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation is int


def _input_of(handler: HTTPRouteHandler) -> _HandlerInput:
    try:
        return _handlers[handler]
    except KeyError:
        parameters = handler.parsed_fn_signature.parameters
        data = parameters.get("data")
        found = _HandlerInput(
            decoder=None if data is None else msgspec.json.Decoder(data.annotation),
            integer_queries=frozenset(
                name for name, p in parameters.items() if _is_integer(p.annotation)
            ),
        )
        _handlers[handler] = found
        return found


async def strict_input(request: Request[Any, Any, Any]) -> None:
    """Refuse query values and bodies that Litestar would coerce or PostgreSQL refuse."""
    handler_input = _input_of(request.route_handler)
    if request.scope["query_string"]:
        check_query(request, handler_input.integer_queries)
    if handler_input.decoder is None:
        return
    body = await request.body()
    if not body.strip():
        return  # Litestar answers a missing required body itself (400 invalid_body)
    decode_strictly(handler_input.decoder, body)


def check_query(request: Request[Any, Any, Any], integer_queries: frozenset[str]) -> None:
    """400 invalid_query for a NUL in any value or a non-integer integer parameter."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise invalid_query("must not contain NUL characters", [name])
        if name in integer_queries and not _INTEGER.fullmatch(value):
            raise invalid_query("Expected `int`", [name])


def decode_strictly(
    decoder: msgspec.json.Decoder[Any], body: bytes, *, max_depth: int | None = MAX_DEPTH
) -> Any:
    """``decoder.decode(body)``; 400 invalid_body (with the issue) if it does not decode or
    nests deeper than ``max_depth`` levels. ``max_depth=None`` leaves only the decoder's own
    bound (about 1,000 levels, less the stack in use), for a route that bounds what it
    stores itself (OPA decision logs)."""
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_body", issues=[msgspec_issue(str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(
            400, "invalid_body", issues=[Issue(path=[], message=f"malformed JSON: {exc}")]
        ) from None
    except UnicodeDecodeError:
        raise ApiError(
            400, "invalid_body", issues=[Issue(path=[], message="malformed JSON: invalid UTF-8")]
        ) from None
    except RecursionError:
        raise too_deep(max_depth) from None
    if max_depth is not None and nests_deeper_than(body, max_depth):
        raise too_deep(max_depth)
    return value


class TooDeepToDecode(ApiError):
    """400 invalid_body: the body nests deeper than the JSON decoder goes."""

    def __init__(self) -> None:
        super().__init__(400, "invalid_body", issues=[Issue(path=[], message=TOO_DEEP_TO_DECODE)])


def too_deep(max_depth: int | None = MAX_DEPTH) -> ApiError:
    """400 invalid_body for a body nested deeper than ``max_depth`` (None: than the JSON
    decoder goes, ``TooDeepToDecode``)."""
    if max_depth is None:
        return TooDeepToDecode()
    message = f"JSON nested deeper than {max_depth} levels"
    return ApiError(400, "invalid_body", issues=[Issue(path=[], message=message)])
