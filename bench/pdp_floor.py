"""The floor of the decision API on this machine: the least any decision server must do.

A bare ASGI app (no framework, no auth, no audit row, no request id) that reads the body,
decodes it with msgspec, evaluates the ``role-based`` template with ``evaluate_set`` and
answers the decision as JSON. ``bench/pdp.py`` serves it with uvicorn exactly as the real
service is served (one worker, uvloop, httptools, the same GC tuning) and loads it with the
same clients, so the gap between the two figures is what the service adds on top of the
unavoidable HTTP server and Rego evaluation. It is a measuring stick, not a server to use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
from pdp_inprocess import build

from controlplane.http.gc_tuning import tune_gc_after_startup
from controlplane.pdp import evaluate_set

_compiled = build(("role-based",))
_encoder = msgspec.json.Encoder()
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json")],
}


class _Body(msgspec.Struct):
    input: dict[str, Any]
    sign: bool = False


_decoder = msgspec.json.Decoder(_Body)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Decode, evaluate, answer."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tune_gc_after_startup()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    decision = evaluate_set(_compiled, _decoder.decode(body).input)
    answer = {"decision": decision.decision, "granted_scopes": decision.granted_scopes}
    await send(_START)
    await send({"type": "http.response.body", "body": _encoder.encode(answer)})
