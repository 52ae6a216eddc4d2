"""Helpers shared by the route modules: the services dependency and the caller's id."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from controlplane.services import Services


def services_of(state: State) -> Services:
    """Dependency: the process's Services."""
    return state.services


def actor_id(request: Request[Any, Any, Any]) -> str:
    """The admin token id of the caller (set by the guard)."""
    return request.state.admin_token.id
