"""Which decision-log chunks are measured event by event, and what a too-deep field becomes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from controlplane.fleet.deep_events import (
    CUT,
    CUT_DEPTH,
    MAX_CUT_BYTES,
    TOO_DEEP,
    cut_too_deep,
    holds_deep_events,
    within_depth,
)
from controlplane.json_depth import cut_deeper_than, nesting_depth


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def chunk(*events: Any) -> bytes:
    return json.dumps(list(events), separators=(",", ":")).encode()


def test_a_chunk_is_measured_only_when_an_event_may_nest_deeper_than_64() -> None:
    assert not holds_deep_events(chunk(nested(64)))  # the event nests 64 levels: within
    assert holds_deep_events(chunk(nested(65)))
    # many brackets, little depth: the count alone does not decide
    assert not holds_deep_events(chunk(*[{"a": [1]}] * 1000))
    # brackets inside strings do not count
    assert not holds_deep_events(chunk({"s": "[" * 200}))


def test_within_depth_keeps_shallow_metadata_and_summarises_deep_fields() -> None:
    shallow = {"input": nested(63), "result": [nested(62)], "path": "a/b"}
    assert within_depth(shallow) is shallow
    deep = {"input": nested(64), "result": [nested(63)], "path": "a/b"}
    bounded = within_depth(deep)
    encoded = json.dumps(nested(64), separators=(",", ":")).encode()
    assert bounded == {
        "input_bytes": len(encoded),
        "input_sha256": hashlib.sha256(encoded).hexdigest(),
        "input_omitted_reason": TOO_DEEP,
        "result": {
            "omitted_bytes": len(json.dumps([nested(63)], separators=(",", ":"))),
            "sha256": hashlib.sha256(
                json.dumps([nested(63)], separators=(",", ":")).encode()
            ).hexdigest(),
            "omitted_reason": "nested deeper than 64 levels",
        },
        "path": "a/b",
    }
    assert "input" in deep  # the caller's metadata is left as it was


def test_cutting_replaces_what_nests_past_the_limit_and_keeps_the_rest() -> None:
    document = json.dumps(
        [{"s": '[{"quoted\\"' + "]" * 5, "deep": nested(5)}, [[[]]], {"x": [1, {"y": []}]}],
        separators=(",", ":"),
    ).encode()
    cut = cut_deeper_than(document, 3, b'"CUT"')
    assert json.loads(cut) == [
        {"s": '[{"quoted\\"' + "]" * 5, "deep": {"a": "CUT"}},  # brackets in strings ignored
        [["CUT"]],
        {"x": [1, "CUT"]},
    ]
    assert cut_deeper_than(document, 10, b'"CUT"') == document  # nothing that deep


def test_a_chunk_too_deep_for_the_decoder_is_cut_to_a_decodable_one() -> None:
    levels = 10_000
    deep = b'{"a":' * levels + b"1" + b"}" * levels
    text = b'[{"decision_id":"d","input":' + deep + b'},{"i":1}]'
    cut = cut_too_deep(text)
    assert nesting_depth(cut, CUT_DEPTH + 5) == CUT_DEPTH
    decoded = json.loads(cut)
    assert decoded[1] == {"i": 1}
    innermost = decoded[0]["input"]
    for _ in range(CUT_DEPTH - 3):
        innermost = innermost["a"]
    assert innermost == {"a": CUT}
    with pytest.raises(ValueError):
        cut_too_deep(b" " * (MAX_CUT_BYTES + 1))
