"""The OpenAPI document served at ``/schema/openapi.json``.

Litestar lays out the paths, operations and parameters; this module makes the document say
what the service does:

- every request and response schema is made by msgspec from the very types that validate
  the bodies (``msgspec.json.schema_components``): ``additionalProperties: false`` for
  ``forbid_unknown_fields``, ``msgspec.Meta`` patterns, lengths and ranges, enums, formats.
  A constraint checked in code rather than by the type is written next to the type: in a
  field's ``Meta(extra_json_schema=...)``, or for the whole body in the Struct's
  ``json_schema_extra`` class variable (e.g. ``{"minProperties": 1}`` on a PATCH body);
- every request body has an example: the body Struct's ``example`` class variable;
- every status a route can answer is documented, errors with the contract's envelope
  (``ErrorBody``). Which error statuses a route answers is decided here, in
  ``route_errors``, from the route's shape (guarded, zone-scoped, has a body, a query, path
  ids, reads the database); a route adds its own with ``opt={"errors": {status: codes}}``
  and opts out of the database rule with ``opt={"database": False}``. A non-envelope answer
  (``/ready``'s 503) is declared with Litestar's ``responses={status: ResponseSpec(T)}``.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import Response
from litestar.routes import HTTPRoute
from litestar.serialization import encode_json

from controlplane.http.errors import ErrorBody

__all__ = [
    "ContractOpenAPI",
    "DocumentedBody",
    "Operation",
    "build_document",
    "operations",
    "route_errors",
    "structs",
]

_REF = "#/components/schemas/{name}"
_ERROR_REF = {"$ref": _REF.format(name="ErrorBody")}

#: PostgreSQL stores no NUL character, so the service refuses one in any request string
#: (400 invalid_body or invalid_query); every string of a request says so, free-form JSON
#: objects (provider configuration) through ``StorableJson``. A body that is not stored
#: (the decision request) says ``stored: ClassVar[bool] = False``.
_NO_NUL = "^[^\\x00]*$"
STORABLE_JSON = "StorableJson"
_STORABLE_REF = {"$ref": _REF.format(name=STORABLE_JSON)}
_STORABLE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value without a NUL character in its strings or keys.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": _NO_NUL},
        {"type": "array", "items": _STORABLE_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": _NO_NUL},
            "additionalProperties": _STORABLE_REF,
        },
    ],
}
SECURITY_SCHEME = "adminToken"

DESCRIPTION = (
    "Admin REST API of the Caracal policy control plane. Every error answers the envelope"
    " `ErrorBody` (`{error, issues, detail}`). Request bodies are read strictly: unknown"
    " fields are refused and nothing is coerced (an integer is written as one: `3600`, not"
    ' `3600.0` or `"3600"`). A method a path does not serve answers `405'
    " method_not_allowed`, an unknown path `404 not_found`."
)

#: What each error status means, for every route that can answer it.
ERROR_STATUSES: dict[int, str] = {
    400: "The request is invalid (the `issues` say where for a body or a query).",
    401: "Missing, malformed, unknown, expired or revoked admin token.",
    403: "The operation is refused for this caller or in this state.",
    404: "Something the request names does not exist (or is archived, or in another zone).",
    408: "The request line, headers or body arrived too slowly (the connection is closed).",
    409: "The request clashes with the current state.",
    413: "The request body exceeds 1 MiB.",
    422: "The content is well-formed but refused.",
    429: "A rate or capacity limit is reached.",
    431: "The request line and headers exceed the limit (64 KiB by default).",
    503: "A dependency (the database) is unavailable; retry later.",
}

#: Error statuses whose answer carries headers (``Retry-After`` on a 503).
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    503: {
        "Retry-After": {
            "description": "Seconds after which a retry may succeed.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def route_errors(
    path: str,
    handler: HTTPRouteHandler,
    *,
    has_body: bool,
    has_query: bool,
    path_params: Iterable[str],
) -> dict[int, list[str]]:
    """The error statuses ``handler`` at ``path`` can answer, each with its error codes: the
    rules every route follows, then the route's own ``opt["errors"]``."""
    errors: dict[int, list[str]] = {}

    def add(status: int, *codes: str) -> None:
        known = errors.setdefault(status, [])
        known.extend(code for code in codes if code not in known)

    add(408, "request_timeout")  # controlplane.http.server_protocol, before any route
    add(431, "headers_too_large")

    if path.startswith("/v1/") and handler.opt.get("scope", "zone") != "public":
        add(401, "invalid_admin_token")
        add(403, "admin_token_zone_mismatch")
    params = list(path_params)
    if "zone_id" in params:
        add(404, "zone_not_found")
    elif params:
        add(404)
    if has_body:
        add(400, "invalid_body")
        add(413, "payload_too_large")
    if has_query:
        add(400, "invalid_query")
    if handler.opt.get("database", True):
        add(503, "database_unavailable")
    for status, codes in handler.opt.get("errors", {}).items():
        add(status, *((codes,) if isinstance(codes, str) else codes))
    return errors


def build_document(app: Litestar) -> dict[str, Any]:
    """The service's OpenAPI document: Litestar's, with msgspec's schemas and the errors."""
    document = copy.deepcopy(app.openapi_schema.to_schema())
    found = list(operations(app, document))
    kinds: list[Any] = [ErrorBody]
    for op in found:
        kinds += op.json_types
    schemas, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    schema_of = {_key(t): s for t, s in zip(kinds, schemas, strict=True)}
    for cls in structs(kinds):
        extra = getattr(cls, "json_schema_extra", None)
        if extra and cls.__name__ in components:
            _merge(components[cls.__name__], extra)
    for cls in structs(op.body_type for op in found if op.body_type is not None):
        if cls.__name__ in components and getattr(cls, "stored", True):
            _storable(components[cls.__name__])
    components[STORABLE_JSON] = _STORABLE_SCHEMA
    for op in found:
        op.rewrite(schema_of)
    document["components"]["schemas"] = dict(sorted(components.items()))
    document["info"]["description"] = DESCRIPTION
    document["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An admin token (global, or scoped to one zone).",
        }
    }
    return document


@dataclass(frozen=True)
class DocumentedBody:
    """``opt={"body": DocumentedBody(T, example)}``: the body of a route that reads it raw and
    checks it in code, as the document shows it."""

    type: Any
    example: Any

    def __deepcopy__(self, memo: dict[int, Any]) -> DocumentedBody:
        return self  # Litestar copies handler options; types with msgspec.Meta do not copy


class ContractOpenAPI(JsonRenderPlugin):
    """Serves ``build_document`` at ``/openapi.json`` (each app has its own plugin; the
    document is built on the first request)."""

    def __init__(self) -> None:
        super().__init__()
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = encode_json(build_document(request.app))
        return self._rendered


class Operation:
    """One operation of the document with the handler that serves it."""

    def __init__(
        self, path: str, method: str, handler: HTTPRouteHandler, operation: dict[str, Any]
    ) -> None:
        self.path = path
        self.method = method
        self.handler = handler
        self.operation = operation
        self.body_type = _body_type(handler)
        self.success, self.declared_errors = _declared_responses(handler)
        parameters = operation.get("parameters", [])
        self.errors = route_errors(
            path,
            handler,
            has_body=self.body_type is not None,
            has_query=any(p["in"] == "query" for p in parameters),
            path_params=[p["name"] for p in parameters if p["in"] == "path"],
        )
        for status in self.declared_errors:
            self.errors.setdefault(status, [])

    @property
    def json_types(self) -> list[Any]:
        """The types whose schemas msgspec makes for this operation."""
        found = [] if self.body_type is None else [self.body_type]
        return found + [kind for kind, media in self.success.values() if _is_json(kind, media)]

    def rewrite(self, schema_of: dict[Any, dict[str, Any]]) -> None:
        op = self.operation
        for parameter in op.get("parameters", []):
            if parameter["in"] == "query":
                parameter["schema"] = _storable(_not_null(parameter["schema"]))
        if self.body_type is not None:
            media: dict[str, Any] = {"schema": _storable(schema_of[_key(self.body_type)])}
            body_struct, optional = _optional(self.body_type)
            declared = self.handler.opt.get("body")
            example = declared.example if declared else getattr(body_struct, "example", None)
            if example is not None:
                media["example"] = example
            op["requestBody"] = {"required": not optional, "content": {"application/json": media}}
        else:
            op.pop("requestBody", None)
        responses: dict[str, Any] = {}
        for status, (kind, media_type) in sorted(self.success.items()):
            responses[str(status)] = _response(status, kind, media_type, schema_of)
        for status, codes in sorted(self.errors.items()):
            if str(status) not in responses:
                responses[str(status)] = _error_response(
                    status, codes, self.declared_errors.get(status)
                )
        op["responses"] = responses
        if 401 in self.errors:
            op["security"] = [{SECURITY_SCHEME: []}]


def operations(app: Litestar, document: dict[str, Any]) -> Iterator[Operation]:
    """The operations of Litestar's ``document`` with their handlers."""
    paths = document.get("paths", {})
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for method, (handler, _) in route.route_handler_map.items():
            operation = item.get(method.lower())
            if operation is not None and handler.include_in_schema:
                yield Operation(route.path_format, method.lower(), handler, operation)


def _body_type(handler: HTTPRouteHandler) -> Any:
    """The type of the request body: ``opt["body"]`` (a handler that reads a raw body and
    checks it in code), the handler's ``data``, or a dependency's ``data``."""
    if "body" in handler.opt:
        return handler.opt["body"].type
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is not None:
        return data.annotation
    for provider in handler.resolve_dependencies().values():
        hints = typing.get_type_hints(provider.dependency)
        if "data" in hints:
            return hints["data"]
    return None


def _declared_responses(
    handler: HTTPRouteHandler,
) -> tuple[dict[int, tuple[Any, str]], dict[int, str]]:
    """The handler's success statuses, each with its body type (None: no body) and media
    type: its own, and those it declares with ``responses``; and the error statuses it
    declares with ``responses={status: ResponseSpec(ErrorBody, description=...)}``."""
    annotation = handler.parsed_fn_signature.return_type.annotation
    if typing.get_origin(annotation) is Response or annotation is Response:
        args = typing.get_args(annotation)
        annotation = args[0] if args else None
    if annotation is type(None) or handler.status_code == 204:
        annotation = None
    success: dict[int, tuple[Any, str]] = {
        handler.status_code: (annotation, _media(handler.media_type))
    }
    errors: dict[int, str] = {}
    for status, spec in (handler.responses or {}).items():
        if spec.data_container is ErrorBody:
            errors[status] = spec.description or ""
        else:
            success[status] = (spec.data_container, _media(spec.media_type))
    return success, errors


def _media(media_type: Any) -> str:
    """A media type as text (Litestar's are enums or strings; unset means JSON)."""
    return str(getattr(media_type, "value", media_type)) or "application/json"


def _is_json(kind: Any, media_type: str) -> bool:
    return kind is not None and media_type.split(";")[0].strip() == "application/json"


def _optional(kind: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(kind, False)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _response(
    status: int, kind: Any, media_type: str, schema_of: dict[Any, dict[str, Any]]
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if kind is None:
        return response
    if _is_json(kind, media_type):
        schema = schema_of[_key(kind)]
    else:  # raw bytes or text in the handler's media type
        schema = {"type": "string"} | ({"format": "binary"} if kind is bytes else {})
    response["content"] = {media_type: {"schema": schema}}
    return response


def _error_response(status: int, codes: list[str], declared: str | None = None) -> dict[str, Any]:
    description = ERROR_STATUSES.get(status, HTTPStatus(status).phrase)
    if declared:
        description += f" {declared}."
    if codes:
        description += " Error codes: " + ", ".join(f"`{code}`" for code in codes) + "."
    media: dict[str, Any] = {"schema": _ERROR_REF}
    if codes:
        media["examples"] = {code: {"value": {"error": code}} for code in codes}
    response: dict[str, Any] = {"description": description, "content": {"application/json": media}}
    if status in ERROR_HEADERS:
        response["headers"] = ERROR_HEADERS[status]
    return response


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without Litestar's ``null`` alternative (an absent query
    parameter is omitted, never sent as null)."""
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if options:
            kept = [o for o in options if o.get("type") != "null"]
            if len(kept) == 1:
                rest = {k: v for k, v in schema.items() if k != key}
                return {**kept[0], **rest}
    if isinstance(schema.get("type"), list) and "null" in schema["type"]:
        types = [t for t in schema["type"] if t != "null"]
        schema = {**schema, "type": types[0] if len(types) == 1 else types}
        if "enum" in schema:
            schema["enum"] = [v for v in schema["enum"] if v is not None]
    return schema


def _storable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (changed in place) refusing NUL characters: a string without a pattern,
    format or enum gets ``_NO_NUL``; a free-form object holds ``StorableJson`` values."""
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = _NO_NUL
    if (
        schema.get("type") == "object"
        and "properties" not in schema
        and not isinstance(schema.get("additionalProperties"), dict)
        and schema.get("additionalProperties") is not False
    ):
        schema["propertyNames"] = {"pattern": _NO_NUL}
        schema["additionalProperties"] = _STORABLE_REF
    for key in ("properties", "$defs"):
        for sub in schema.get(key, {}).values():
            _storable(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _storable(schema[key])
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _storable(sub)
    return schema


def _key(kind: Any) -> Any:
    return repr(kind)


def structs(types: Iterable[Any]) -> set[type[msgspec.Struct]]:
    """Every Struct class reachable from ``types``."""
    found: set[type[msgspec.Struct]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, msgspec.inspect.StructType):
            if node.cls in found:
                return
            found.add(node.cls)
        if isinstance(node, msgspec.inspect.Field):
            walk(node.type)
        elif isinstance(node, tuple | list):
            for item in node:
                walk(item)
        elif isinstance(node, msgspec.inspect.Type):
            for name in node.__struct_fields__:
                walk(getattr(node, name))

    walk(msgspec.inspect.multi_type_info(list(types)))
    return found


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``extra`` into ``target`` (nested objects merged, other values replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
