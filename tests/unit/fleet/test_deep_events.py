"""Which decision-log chunks are measured event by event, and what a too-deep field becomes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from controlplane.fleet.deep_events import TOO_DEEP, holds_deep_events, within_depth


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
