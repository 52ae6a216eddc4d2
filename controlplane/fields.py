"""Constrained string types shared by the request bodies, and what a PATCH body changes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from controlplane.errors import Invalid

#: Longest resource or provider ``identifier`` (they are indexed; PostgreSQL refuses index
#: entries over ~2.7 kB, and anything longer than this is not a real identifier).
MAX_IDENTIFIER_LENGTH = 2048


def whole_string(pattern: str) -> str:
    """``^pattern$`` that matches only the whole string.

    msgspec checks patterns with Python's ``re.search``, where ``$`` also matches before a
    final newline (``"abc\\n"`` would pass ``^[a-z]+$``); the lookahead refuses that. ECMA-262
    (the OpenAPI document's dialect) reads the pattern the same way.
    """
    return f"^{pattern}$(?!\\n)"


NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)]


#: The ``json_schema_extra`` of a PATCH body: ``changes_of`` refuses one that sets nothing.
AT_LEAST_ONE_FIELD: dict[str, Any] = {"minProperties": 1}


def changes_of(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body sets (``UNSET`` ones left out); Invalid no_fields when none."""
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if not changes:
        raise Invalid("no_fields", "the body contains no updatable fields")
    return changes
