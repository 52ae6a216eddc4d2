"""OPA decision events nested deeper than ``MAX_DEPTH``: stored, their too-deep parts
summarised.

OPA retries a whole decision-log chunk after any non-2xx answer, forever, so one event
nested too deep must not refuse its chunk. The chunk is decoded without the body depth
limit (the decoder's own bound, about 1,000 levels, still holds) and each of its events is
stored; in the audit metadata of an event, a field that would nest it deeper than
``MAX_DEPTH`` levels (the input, the result, a policy output, a label…) is replaced by the
size and SHA-256 of its JSON, as the audit records a value too large. Nothing deeper than
the limit reaches the recursive walks of the metadata (redaction, NUL cleaning) or jsonb.

Most chunks are shallow: one count of the chunk's brackets, rarely one depth scan of it in
C, tells that none of its events can be deep, and then no event is measured.

A chunk nesting deeper than ``CUT_DEPTH`` (OPA accepts inputs up to 10,000 levels; the
JSON decoder and the recursive walks stop near 1,000) is cut first: each value past that
depth becomes the string ``CUT`` (``cut_too_deep``), then it is decoded and stored as
above, so the fields holding a cut are summarised, their size and SHA-256 being those of the
cut JSON. Cutting walks the chunk in Python, so only chunks of at most ``MAX_CUT_BYTES`` are
cut; a larger one that deep stays a 400.
"""

from __future__ import annotations

from typing import Any

import msgspec

from controlplane.decisions.pipeline import omitted
from controlplane.json_depth import MAX_DEPTH, cut_deeper_than, nesting_depth, nests_deeper_than

__all__ = [
    "CUT",
    "CUT_DEPTH",
    "MAX_CUT_BYTES",
    "TOO_DEEP",
    "chunk_depth",
    "cut_too_deep",
    "holds_deep_events",
    "within_depth",
]

#: ``omitted_reason`` of a part left out for its depth.
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
#: A chunk (the array is level 1) nesting deeper than this is cut before it is decoded.
CUT_DEPTH = 4 * MAX_DEPTH
#: What a value past ``CUT_DEPTH`` becomes.
CUT = f"nested deeper than {CUT_DEPTH} levels: cut"
#: The largest chunk that is cut (~0.2 µs per bracket or string: under a second).
MAX_CUT_BYTES = 4 * 1024 * 1024
_json = msgspec.json.Encoder()
_CUT_JSON = _json.encode(CUT)


def chunk_depth(chunk: bytes) -> int:
    """How deep the JSON array ``chunk`` nests, counted up to ``CUT_DEPTH + 1``; 0 when it
    has too few brackets for an event to nest deeper than ``MAX_DEPTH`` (most chunks: one
    count, no scan). One measure serves both bounds: what to summarise, what to cut."""
    if chunk.count(b"{") + chunk.count(b"[") <= MAX_DEPTH + 1:
        return 0
    return nesting_depth(chunk, CUT_DEPTH)


def holds_deep_events(chunk: bytes) -> bool:
    """True if an event of the JSON array ``chunk`` may nest deeper than ``MAX_DEPTH`` (the
    array is one level more)."""
    return chunk_depth(chunk) > MAX_DEPTH + 1


def cut_too_deep(chunk: bytes) -> bytes:
    """``chunk`` with each value nested deeper than ``CUT_DEPTH`` levels replaced by ``CUT``
    (a JSON string); ``chunk`` must be at most ``MAX_CUT_BYTES``."""
    if len(chunk) > MAX_CUT_BYTES:
        raise ValueError(f"a chunk over {MAX_CUT_BYTES} bytes is not cut")
    return cut_deeper_than(chunk, CUT_DEPTH, _CUT_JSON)


def within_depth(metadata: dict[str, Any]) -> dict[str, Any]:
    """An event's audit ``metadata`` nesting at most ``MAX_DEPTH`` levels: ``metadata``
    itself, or a copy in which each field nesting deeper than ``MAX_DEPTH - 1`` is
    ``omitted(…, TOO_DEEP)`` — the input as ``input_bytes``, ``input_sha256`` and
    ``input_omitted_reason`` instead of ``input`` (the names of an input too large)."""
    bounded: dict[str, Any] | None = None
    for key, value in metadata.items():
        if not isinstance(value, dict | list):
            continue
        encoded = _json.encode(value)
        if not nests_deeper_than(encoded, MAX_DEPTH - 1):
            continue
        if bounded is None:
            bounded = dict(metadata)
        summary = omitted(encoded, TOO_DEEP)
        if key == "input":
            del bounded["input"]
            bounded.update(
                input_bytes=summary["omitted_bytes"],
                input_sha256=summary["sha256"],
                input_omitted_reason=TOO_DEEP,
            )
        else:
            bounded[key] = summary
    return metadata if bounded is None else bounded
