"""A fast path for the hottest routes, in front of Litestar, with Litestar's behaviour.

A route opts in with ``opt={"fast_path": answer}``, ``answer(services, zone_id, body,
actor_id) -> bytes`` being the function its Litestar handler also calls (the decision
routes). For a request to such a route the fast path does what Litestar would do, with
Litestar's own parts, minus the frame around them (~50 µs a request, docs/performance.md):

- routing: Litestar's router (``handle_routing``: the same path normalisation, the same
  route and path parameters; ``path`` (normalised), ``route_handler``, ``path_params`` and
  ``path_template`` are set in the scope as Litestar sets them, so the access log and hooks
  that read them see the same);
- the route's guards (``admin_guard``: authentication, scope, token cache) with a Litestar
  ``ASGIConnection``;
- the body, read with Litestar's limit (``413``) and Litestar's disconnect error;
- errors: the route's exception handlers (``controlplane.http.errors``) picked and rendered
  exactly as Litestar's exception middleware does, then the app's ``after_exception`` hooks;
- the 200: the bytes ``answer`` returns with the headers Litestar's ``ASGIResponse`` sends.

The request id, its echo header and the access log line come from
``RequestContextMiddleware``, outside both paths. Everything else goes to Litestar: other
routes and methods, a query string (``strict_input`` checks it), a ``root_path``, an
invalid ``Host``, an ``Origin`` when CORS is configured, and routes whose handler has
middleware, ``after_request``/``after_response`` hooks or a ``before_request`` hook other
than ``strict_input`` (which, for a route without a ``data`` body and a query, does
nothing). ``tests/test_fast_path.py`` answers the same requests both ways and compares.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from litestar import Litestar
from litestar._asgi.utils import is_valid_host
from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.middleware._internal.exceptions.middleware import get_exception_handler
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.path import normalize_path

from controlplane.http.strict_input import strict_input

#: ``answer(services, zone_id, body, actor_id)``: the encoded 200 body (errors raise).
Answer = Callable[[Any, str, bytes, str], Awaitable[bytes]]

_JSON = (b"content-type", b"application/json")

#: ``normalize_path`` (a regular expression) once per distinct raw path.
_normalized = lru_cache(1024)(normalize_path)


@dataclass(frozen=True, slots=True)
class _Route:
    """What the fast path needs of a route handler, resolved once."""

    answer: Answer
    #: the route's guards, awaited as Litestar awaits them (``guard(connection, handler)``)
    guards: tuple[Any, ...]
    max_body_size: int | None


class FastPath:
    """ASGI wrapper around Litestar's handler; see the module docstring."""

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        self.litestar = litestar
        self._cors = litestar.cors_config is not None
        self._routes: dict[HTTPRouteHandler, _Route | None] = {}

    async def __call__(self, asgi_scope: Scope, receive: Receive, send: Send) -> None:
        scope: Any = asgi_scope
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["query_string"]
            or scope.get("root_path")
            or not self._plain_headers(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        try:
            _, handler, path, params, template = self.litestar.asgi_router.handle_routing(
                _normalized(scope["path"]), "POST"
            )
        except Exception:  # no such route or method: Litestar answers 404/405
            await self.app(scope, receive, send)
            return
        if not isinstance(handler, HTTPRouteHandler):
            await self.app(scope, receive, send)
            return
        route = self._route_of(handler)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route_handler"] = handler
        scope["path"] = path
        scope["path_params"] = params
        scope["path_template"] = template
        await self._serve(scope, receive, send, handler, route)

    def _plain_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """False when Litestar must see the request: an invalid Host, or an Origin for CORS."""
        for name, value in headers:
            if name == b"host":
                if not is_valid_host(value):
                    return False
            elif name == b"origin" and self._cors:
                return False
        return True

    def _route_of(self, handler: HTTPRouteHandler) -> _Route | None:
        """The route's fast-path parts, or None when the route must go through Litestar."""
        try:
            return self._routes[handler]
        except KeyError:
            answer: Answer | None = handler.opt.get("fast_path")
            before = handler.resolve_before_request()
            eligible = (
                answer is not None
                and not handler.resolve_middleware()
                and not any(layer.after_request for layer in handler.ownership_layers)
                and handler.resolve_after_response() is None
                and before in (None, strict_input)
                and "data" not in handler.parsed_fn_signature.parameters
            )
            route = None
            if eligible and answer is not None:
                guards = tuple(handler.resolve_guards())  # made async by Litestar
                route = _Route(answer, guards, handler.resolve_request_max_body_size())
            self._routes[handler] = route
            return route

    async def _serve(
        self, scope: Any, receive: Receive, send: Any, handler: HTTPRouteHandler, route: _Route
    ) -> None:
        try:
            connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive, send)
            for guard in route.guards:
                await guard(connection, handler)
            body = await read_body(scope, receive, route.max_body_size)
            services = self.litestar.state.services
            zone_id = scope["path_params"]["zone_id"]
            actor = scope["state"]["admin_token"].id  # set by admin_guard (``caller``)
            encoded = await route.answer(services, zone_id, body, actor)
        except Exception as exc:
            await self._error(scope, receive, send, handler, exc)
            return
        length = (b"content-length", str(len(encoded)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [_JSON, length]})
        await send({"type": "http.response.body", "body": encoded})

    async def _error(
        self, scope: Scope, receive: Receive, send: Send, handler: HTTPRouteHandler, exc: Exception
    ) -> None:
        """Answer ``exc`` as Litestar's exception middleware would."""
        exception_handler = get_exception_handler(handler.resolve_exception_handlers(), exc)
        if exception_handler is None:
            raise exc
        litestar = self.litestar
        request = litestar.request_class(scope=scope, receive=receive, send=send)
        response = exception_handler(request, exc)
        encoders = handler.resolve_type_encoders()
        await response.to_asgi_response(app=None, request=request, type_encoders=encoders)(
            scope, receive, send
        )
        for hook in litestar.after_exception:
            await hook(exc, scope)


async def read_body(scope: Scope, receive: Receive, limit: int | None) -> bytes:
    """The request body as Litestar's ``Request.body()`` reads it: ``RequestEntityTooLarge``
    when the announced or received length is over ``limit``, Litestar's error on a
    disconnect."""
    most = limit or math.inf
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                shown = value.decode("latin-1")
                raise ClientException(f"Invalid content-length: {shown!r}") from None
            if announced > most:
                raise RequestEntityTooLarge
            break
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                received += len(chunk)
                if received > most:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
