"""Request ids: assignment, echo header, context variable and the per-request log line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.ids import new_id
from controlplane.metrics.http import observe_request
from controlplane.request_id import REQUEST_ID, current_request_id

log = logging.getLogger("controlplane.access")

__all__ = [
    "RequestContextMiddleware",
    "current_request_id",
    "incoming_request_id",
    "new_request_id",
]

_VALID_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")
_HEADER = b"x-request-id"


def new_request_id() -> str:
    """A fresh UUIDv7 request id."""
    return new_id()


def incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` when it is 1-128 visible ASCII characters, else a new one."""
    for name, value in headers:
        if name == _HEADER:
            return value.decode("ascii") if _VALID_ID.match(value) else new_request_id()
    return new_request_id()


class RequestContextMiddleware:
    """Outermost ASGI wrapper: sets the request id, echoes it and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:  # equal to "http"
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope["headers"])
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500
        encoded = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                headers.append((_HEADER, encoded))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(scope, status, elapsed)
            if log.isEnabledFor(logging.INFO):  # skip building the record's fields when off
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "request_id": request_id,
                    },
                )
            REQUEST_ID.reset(token)
