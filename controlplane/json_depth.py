"""How deep a JSON document nests objects and arrays, counted in C.

Free-form values (decision inputs, provider configuration, OPA decision events) are walked
recursively by the service, by the Rego engine and by PostgreSQL, so their depth is bounded
by ``MAX_DEPTH``: a request body is refused past it (``controlplane.http.strict_input``), an
OPA decision event is stored with its too-deep parts summarised
(``controlplane.fleet.deep_events``).
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "TOO_DEEP_TO_DECODE", "nesting_depth", "nests_deeper_than"]

#: How deep a JSON body (or an OPA decision event) may nest objects and arrays; the
#: document itself is level 1.
MAX_DEPTH = 64
#: The issue of a document nested deeper than the JSON decoder goes at all (msgspec stops at
#: the interpreter's recursion limit, 1,000, less the stack already in use).
TOO_DEEP_TO_DECODE = "JSON nested deeper than the decoder's limit (about 1000 levels)"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def nests_deeper_than(document: bytes, limit: int) -> bool:
    """True if the well-formed JSON ``document`` nests deeper than ``limit`` levels.

    Fewer brackets than the limit cannot nest deeper than it: the exact count is rarely run."""
    return (
        document.count(b"{") + document.count(b"[") > limit
        and nesting_depth(document, limit) > limit
    )


def nesting_depth(document: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of objects and arrays in a well-formed JSON document, counted up
    to ``limit + 1`` (enough to tell whether it is deeper than ``limit``).

    Strings removed and every other character but brackets deleted, each pass deletes every
    innermost ``[]``/``{}`` pair in one scan: the number of passes that empty the brackets is
    the depth. All of it runs in C (a batch of inputs has more brackets than the limit while
    nesting little: walking every bracket in Python cost ~10 % of a batch request)."""
    brackets = _without_strings(document).translate(None, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        brackets = _EMPTY_PAIR.sub(b"", brackets)
        depth += 1
    return depth


def _without_strings(document: bytes) -> bytes:
    """``document`` without its JSON strings. Without an escaped quote in the document, every
    ``"`` opens or closes a string, so splitting on it is exact (and fast); else the regex."""
    if b'\\"' not in document:
        return b"".join(document.split(b'"')[0::2])
    return _STRING.sub(b"", document)
