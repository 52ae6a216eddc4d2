"""HTTP request metrics, recorded by the request-context middleware for every request.

The route label is the route's template (``/v1/zones/{zone_id}/decisions``), never the raw
path; requests no route matched (404, 405) share the label ``unmatched``, and methods
outside the standard ones are ``other``, so no client can grow the label sets.
"""

from __future__ import annotations

import re
from typing import Any

from controlplane.metrics.definitions import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from controlplane.metrics.switch import SWITCH

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]*\}")

# (method, Litestar path template, status) -> bound children; bounded by the routes.
_children: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}


def route_label(path_template: str | None) -> str:
    """``/v1/zones/{zone_id:str}`` -> ``/v1/zones/{zone_id}``; None (no route) -> unmatched."""
    if not path_template:
        return UNMATCHED
    return _TYPED_PARAMETER.sub(r"{\1}", path_template)


def _bind(method: str, path_template: str | None, status: int) -> tuple[Any, Any]:
    route = route_label(path_template)
    pair = (
        HTTP_REQUESTS.labels(method, route, str(status)),
        HTTP_REQUEST_DURATION.labels(method, route),
    )
    _children[(method, path_template, status)] = pair
    return pair


def observe_request(scope: Any, status: int, seconds: float) -> None:
    """Count one answered request of this ASGI ``scope`` and observe its duration."""
    if not SWITCH.on:
        return
    method = scope["method"]
    if method not in _METHODS:
        method = "other"
    template = scope.get("path_template")
    pair = _children.get((method, template, status)) or _bind(method, template, status)
    pair[0].inc()
    pair[1].observe(seconds)
