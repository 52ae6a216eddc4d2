"""Constrained string types shared by the request bodies."""

from __future__ import annotations

from typing import Annotated

import msgspec

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
