"""The HTTP frame's errors: every failure — a domain refusal (``controlplane.errors``), an
``ApiError`` of the HTTP layer, a framework or database error — becomes the contract's
envelope here."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from controlplane.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    Issue,
    NotFound,
    PathItem,
    TooManyRequests,
    Unavailable,
    Unprocessable,
)
from controlplane.http.request_context import current_request_id

__all__ = ["Issue", "PathItem"]

log = logging.getLogger("controlplane.errors")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """The error envelope of the contract."""

    error: str
    issues: list[Issue] | None = None
    detail: str | None = None


class ApiError(Exception):
    """An error of the HTTP layer (a request that cannot be translated into a domain call),
    answered with the contract's envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(code if detail is None else f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.issues = issues


def error_responses(described: Mapping[int, str]) -> dict[int, ResponseSpec]:
    """A route's ``responses=`` entries for the error statuses it can answer, each in the
    contract's envelope with its description (what ``controlplane.http.openapi`` lists)."""
    return {
        status: ResponseSpec(ErrorBody, description=description, generate_examples=False)
        for status, description in described.items()
    }


def invalid_body(message: str, path: list[PathItem] | None = None) -> ApiError:
    """A 400 invalid_body with a single issue."""
    return ApiError(400, "invalid_body", issues=[Issue(path=path or [], message=message)])


def invalid_query(message: str, path: list[PathItem]) -> ApiError:
    """A 400 invalid_query with a single issue."""
    return ApiError(400, "invalid_query", issues=[Issue(path=path, message=message)])


#: ``Retry-After`` (seconds) of every 503: an outage answer invites a retry soon.
RETRY_AFTER_SECONDS = 1


def error_response(
    status: int, code: str, detail: str | None = None, issues: list[Issue] | None = None
) -> Response[ErrorBody]:
    """Build the envelope response (a 503 carries ``Retry-After``)."""
    return Response(
        ErrorBody(error=code, issues=issues, detail=detail),
        status_code=status,
        media_type="application/json",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None,
    )


_AT_RE = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_SEGMENT_RE = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_UNKNOWN_FIELD_RE = re.compile(r"^Object contains unknown field `(?P<field>.*)`$")


def msgspec_issue(error_text: str, root: str = "$.data") -> Issue:
    """Turn a msgspec ValidationError message into an Issue with a list path."""
    match = _AT_RE.match(error_text)
    message = match.group("message") if match else error_text
    raw_path = (match.group("path") if match else None) or "$"
    if raw_path.startswith(root):
        raw_path = raw_path[len(root) :]
    elif raw_path.startswith("$"):
        raw_path = raw_path[1:]
    path: list[PathItem] = []
    for key, index in _SEGMENT_RE.findall(raw_path):
        if not key and not index:  # msgspec's ``[...]``: a value under some key of a dict
            break  # the path stops at the dict (msgspec does not say which key)
        path.append(int(index) if index else key)
    unknown = _UNKNOWN_FIELD_RE.match(message)
    if unknown:
        path.append(unknown.group("field"))
    return Issue(path=path, message=message)


#: Litestar's message for a missing body names its own parameter (``data``).
_MISSING_DATA = "Object missing required field `data`"
MISSING_BODY = "a JSON body is required"


def _validation_handler(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    source = extra[0].get("source") if extra and isinstance(extra[0], dict) else None
    if source == "body" or source is None:
        cause = exc.__cause__
        if isinstance(cause, msgspec.ValidationError):
            issues = [msgspec_issue(str(cause))]
        else:
            issues = [
                Issue(path=_key_path(item.get("key")), message=str(item.get("message")))
                for item in extra
                if isinstance(item, dict)
            ] or [Issue(path=[], message=str(exc.detail))]
        issues = [
            Issue(path=i.path, message=MISSING_BODY) if i.message == _MISSING_DATA else i
            for i in issues
        ]
        return error_response(400, "invalid_body", issues=issues)
    issues = [
        Issue(path=_key_path(item.get("key")), message=str(item.get("message")))
        for item in extra
        if isinstance(item, dict)
    ]
    return error_response(400, "invalid_query", issues=issues)


def _key_path(key: Any) -> list[PathItem]:
    if not key or key == "data":
        return []
    return [int(i) if i else k for k, i in _SEGMENT_RE.findall("." + str(key))]


def _api_error_handler(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.detail, exc.issues)


#: The status of each kind of domain refusal: the one place where they meet HTTP.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    TooManyRequests: 429,
    Unavailable: 503,
}


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain refusal (its nearest kind in ``DOMAIN_STATUS``)."""
    for kind in type(exc).__mro__:
        status = DOMAIN_STATUS.get(kind)
        if status is not None:
            return status
    return 500


def domain_error_body(exc: DomainError) -> ErrorBody:
    """The envelope of a domain refusal."""
    return ErrorBody(error=exc.code, issues=exc.issues, detail=exc.detail)


def _domain_error_handler(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return error_response(domain_status(exc), exc.code, exc.detail, exc.issues)


def _http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, NotFoundException) or status == 404:
        return error_response(404, "not_found")
    if isinstance(exc, MethodNotAllowedException) or status == 405:
        response = error_response(405, "method_not_allowed")
        allow = (exc.headers or {}).get("Allow") if exc.headers else None
        if allow:
            response.headers["Allow"] = allow
        return response
    if status == 413:
        return error_response(413, "payload_too_large", "the request body exceeds 1 MiB")
    if status == 400:
        # Raised by the body decoder for malformed JSON.
        return error_response(
            400,
            "invalid_body",
            issues=[Issue(path=[], message=f"malformed JSON: {exc.detail}")],
        )
    if status == 401:
        return error_response(401, "invalid_admin_token")
    if status == 403:
        return error_response(403, "admin_token_zone_mismatch")
    if status == 415:
        return error_response(415, "unsupported_media_type", str(exc.detail))
    if status >= 500 and exc.detail == _CLIENT_GONE:
        # Nobody reads this answer; a client going away is not a server fault.
        log.info("client disconnected", extra={"request_id": current_request_id()})
        return error_response(499, "client_disconnected")
    if status >= 500:
        return _internal_error_handler(request, exc)
    return error_response(status, "http_error", str(exc.detail))


_CLIENT_GONE = "client disconnected prematurely"  # Litestar's text for http.disconnect


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = current_request_id()
    log.error(
        "unhandled exception",
        exc_info=exc,
        extra={"request_id": request_id, "method": request.method, "path": request.url.path},
    )
    return error_response(500, "internal_error", f"request_id={request_id}")


_UNSTORABLE = "a value cannot be stored (strings must not contain NUL, numbers must be in range)"
_TOO_LARGE = "a value is too large to be stored"  # over PostgreSQL's index entry size (~2.7 kB)


def _refused_value_handler(request: Request[Any, Any, Any], exc: psycopg.Error) -> Response[Any]:
    """A value PostgreSQL cannot store: the caller's input, so 400 invalid_body. The
    database's message is not logged: it may quote the value."""
    log.warning(
        "value refused by the database",
        extra={
            "request_id": current_request_id(),
            "path": request.url.path,
            "sqlstate": exc.sqlstate,
        },
    )
    too_large = isinstance(exc, psycopg.errors.ProgramLimitExceeded)
    issue = Issue(path=[], message=_TOO_LARGE if too_large else _UNSTORABLE)
    return error_response(400, "invalid_body", issues=[issue])


def _database_unavailable_handler(
    request: Request[Any, Any, Any], exc: psycopg.OperationalError
) -> Response[Any]:
    """The database cannot be reached or went away (no connection within the acquire
    timeout, a connection broken by a crash or restart): 503, never 500."""
    log.warning(
        "database unavailable",
        extra={
            "request_id": current_request_id(),
            "path": request.url.path,
            "error": type(exc).__name__,
            "sqlstate": exc.sqlstate,
        },
    )
    return error_response(503, "database_unavailable", "the database is unavailable; retry")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error_handler,
    DomainError: _domain_error_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_exception_handler,
    psycopg.DataError: _refused_value_handler,
    psycopg.errors.ProgramLimitExceeded: _refused_value_handler,
    psycopg.OperationalError: _database_unavailable_handler,
    Exception: _internal_error_handler,
}
