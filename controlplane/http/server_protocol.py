"""uvicorn's httptools protocol with the limits it lacks: header size and slow clients.

uvicorn with httptools accepts headers of any size (its ``h11_max_incomplete_event_size``
applies to h11 only) and has no deadline for a request that never finishes its headers or
body (``timeout_keep_alive`` only runs between requests). This subclass, given to uvicorn
as ``http=…`` by ``serve``, adds per connection:

* request line and headers over ``CARACAL_MAX_HEADER_BYTES`` (64 KiB): ``431`` and close,
  counted as they arrive, so a single endless header is cut off too;
* headers not complete ``CARACAL_HEADER_TIMEOUT_SECONDS`` (10 s) after the connection opened
  or the request began: ``408`` and close;
* a body not complete ``CARACAL_BODY_TIMEOUT_SECONDS`` (30 s) after the headers: ``408``
  (or, once the answer has started, just close).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from controlplane.settings import Settings, load_settings

_LIMITS: Settings | None = None


def _settings() -> Settings:
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = load_settings()
    return _LIMITS


def _answer(status: int, reason: bytes, code: str, detail: str) -> bytes:
    body = msgspec.json.encode({"error": code, "detail": detail})
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _Rejected(Exception):
    """Stops the parser after the connection was answered and closed."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus a header-size limit and header/body deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self._max_header_bytes = settings.max_header_bytes
        self._header_timeout = settings.header_timeout_seconds
        self._body_timeout = settings.body_timeout_seconds
        self._awaiting_headers = True
        self._raw_header_bytes = 0
        self._header_bytes = 0
        #: the connection's one timer, set for ``_timer_at`` (loop time)
        self._deadline: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        #: when the request phase in ``_deadline_what`` is too slow (None: nothing pending)
        self._deadline_at: float | None = None
        self._deadline_what = ""
        self._rejected = False

    # -- deadlines --------------------------------------------------------------------------
    # One timer per connection, not one per request phase: arming moves the deadline and
    # only reschedules the timer when the new deadline is earlier than the timer; a timer
    # that fires before its (moved) deadline sets itself again, and one that finds the
    # connection disarmed stops. A request then costs no timer calls at all.

    def _arm(self, seconds: float, what: str) -> None:
        at = self.loop.time() + seconds
        self._deadline_at, self._deadline_what = at, what
        if self._deadline is not None and self._timer_at <= at:
            return
        self._cancel_timer()
        self._set_timer(at)

    def _disarm(self) -> None:
        self._deadline_at = None

    def _set_timer(self, at: float) -> None:
        self._timer_at = at
        self._deadline = self.loop.call_at(at, self._deadline_passed)

    def _cancel_timer(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        at = self._deadline_at
        if at is None:
            return
        if self.loop.time() < at:
            self._set_timer(at)
            return
        self._deadline_at = None
        self._too_slow(self._deadline_what)

    def _too_slow(self, what: str) -> None:
        started = self.cycle is not None and self.cycle.response_started
        if started or (self._awaiting_headers and self._raw_header_bytes == 0):
            self._close()  # nothing asked yet, or an answer already on its way: just close
            return
        self._reject(
            _answer(408, b"Request Timeout", "request_timeout", f"the request {what} too slowly")
        )

    # -- rejecting --------------------------------------------------------------------------

    def _close(self) -> None:
        self._disarm()
        self._cancel_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def _reject(self, answer: bytes) -> None:
        self._rejected = True
        if not self.transport.is_closing():
            self.transport.write(answer)
        self._close()

    def _headers_too_large(self) -> None:
        limit = self._max_header_bytes // 1024
        self._reject(
            _answer(
                431,
                b"Request Header Fields Too Large",
                "headers_too_large",
                f"the request line and headers exceed {limit} KiB",
            )
        )

    def send_400_response(self, msg: str) -> None:
        if not self._rejected:  # the parser's error after a rejection is not a second answer
            super().send_400_response(msg)

    # -- protocol and parser callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._header_timeout, "headers arrived")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self._awaiting_headers:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._raw_header_bytes > self._max_header_bytes:
            # Still inside the headers: stop before the parser buffers any more of them.
            self._headers_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._arm(self._header_timeout, "headers arrived")

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._max_header_bytes:
            self._headers_too_large()
            raise _Rejected  # stops the parser (uvicorn's 400 is suppressed)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._raw_header_bytes = 0
        self._arm(self._body_timeout, "body arrived")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        super().on_message_complete()
