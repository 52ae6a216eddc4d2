"""Bounds on a decision's input, so that one decision cannot hold the process for long.

The engine's time grows with the number of values in the input and, through the templates,
with the lists they iterate (docs/outages.md, "Decision input limits"): through the nine
templates 1,000 ``requested_scopes`` cost 36 ms, 8 delegation hops of 256 scopes 36-60 ms,
34,000 small values 50 ms, while one string of 900 kB costs 0.5 ms. Within these limits
the nine templates together stay near 25 ms. Over a limit: 400 ``invalid_body`` naming the
list. For a usual input the checks cost a few look-ups and three ``bytes.count``; a batch
counts its body once, and only when that count is over the bar each item's own JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from controlplane.decisions.sessions import at_batch_item
from controlplane.errors import Invalid, PathItem

#: Longest ``requested_scopes``.
MAX_REQUESTED_SCOPES = 128
#: Most hops in ``delegation.chain`` (the delegation templates allow 5).
MAX_DELEGATION_HOPS = 8
#: Longest ``scopes`` of one delegation hop.
MAX_HOP_SCOPES = 64
#: Longest list anywhere else in the input (``subject.roles``, ``resource.scopes``, …).
MAX_LIST_ITEMS = 1000
#: Most JSON values (objects, lists, strings, numbers, …) in the whole input.
MAX_VALUES = 10_000


def check_input_limits(input: dict[str, Any], body: bytes) -> None:
    """400 invalid_body when the input (decoded from ``body``) is over a limit."""
    _check(input, _may_hold_too_many(body))


def check_batch_input_limits(inputs: Sequence[Any], body: bytes) -> None:
    """``check_input_limits`` for each input of a batch (decoded from ``body``); the error
    of the first input over a limit, its issue path under ``["inputs", index]``."""
    body_may_hold_too_many = _may_hold_too_many(body)
    for index, item in enumerate(inputs):
        try:
            _check(item, body_may_hold_too_many and _may_hold_too_many(_json.encode(item)))
        except Invalid as exc:
            raise at_batch_item(exc, index) from None


def _check(input: dict[str, Any], may_hold_too_many: bool) -> None:
    """The list limits, and the value count when ``may_hold_too_many``."""
    _check_lists(input)
    if may_hold_too_many and _count_values(input, []) > MAX_VALUES:
        raise Invalid.body(f"at most {MAX_VALUES} values are allowed", ["input"])


def _check_lists(input: dict[str, Any]) -> None:
    """The limits on the lists the templates iterate."""
    _at_most(input.get("requested_scopes"), MAX_REQUESTED_SCOPES, ["requested_scopes"])
    delegation = input.get("delegation")
    if isinstance(delegation, dict):
        chain = delegation.get("chain")
        _at_most(chain, MAX_DELEGATION_HOPS, ["delegation", "chain"])
        if isinstance(chain, list):
            for index, hop in enumerate(chain):
                if isinstance(hop, dict):
                    scopes = hop.get("scopes")
                    _at_most(scopes, MAX_HOP_SCOPES, ["delegation", "chain", index, "scopes"])


def _may_hold_too_many(encoded: bytes) -> bool:
    """False when JSON text ``encoded`` cannot hold a list over ``MAX_LIST_ITEMS`` nor more
    than ``MAX_VALUES`` values: every value but the first of its container follows a comma,
    so fewer commas and brackets than the list limit settles both."""
    count = encoded.count(b",") + encoded.count(b"{") + encoded.count(b"[")
    return count >= MAX_LIST_ITEMS


_json = msgspec.json.Encoder()


def _at_most(value: Any, limit: int, path: list[PathItem]) -> None:
    if isinstance(value, list) and len(value) > limit:
        raise Invalid.body(f"at most {limit} items are allowed", ["input", *path])


def _count_values(value: Any, path: list[PathItem]) -> int:
    """How many values ``value`` holds (itself included); raises for a list over the limit."""
    if isinstance(value, dict):
        return 1 + sum(_count_values(item, [*path, key]) for key, item in value.items())
    if isinstance(value, list):
        _at_most(value, MAX_LIST_ITEMS, path)
        return 1 + sum(
            _count_values(item, [*path, index]) if isinstance(item, dict | list) else 1
            for index, item in enumerate(value)
        )
    return 1
