"""The id of the request being handled: a context variable the HTTP frame sets
(``controlplane.http.request_context``) and audit events and log lines read."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return REQUEST_ID.get()
