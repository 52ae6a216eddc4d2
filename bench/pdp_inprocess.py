"""In-process PDP throughput: one template alone, then a five-policy set.

Run: ``.venv/bin/python bench/pdp_inprocess.py [--seconds 2]``. Prints evaluations per
second and microseconds per evaluation of ``evaluate_set`` (input conversion, evaluation of
every policy, normalisation and combination), on one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.pdp import (
    CompiledSet,
    check_contract,
    compile_policy,
    compile_set,
    evaluate_set,
    get_template,
)

FIVE = (
    "role-based",
    "baseline-scopes",
    "baseline-session-state",
    "baseline-step-up-triggers",
    "baseline-rate-limits",
)

INPUT: dict[str, Any] = {
    "subject": {
        "id": "user-42",
        "type": "user",
        "roles": ["editor", "viewer"],
        "attributes": {"department": "sales", "clearance": 2, "status": "active"},
    },
    "application": {
        "id": "0190a5c2-7d4e-7b8a-9c1d-2e3f4a5b6c7d",
        "name": "Portal",
        "credential_type": "token",
        "traits": ["first_party"],
    },
    "resource": {
        "id": "0190a5c2-7d4e-7b8a-9c1d-2e3f4a5b6c7e",
        "identifier": "resource://orders",
        "scopes": ["orders:read", "orders:write", "orders:delete"],
    },
    "requested_scopes": ["orders:read", "orders:write"],
    "session": {
        "id": "0190a5c2-7d4e-7b8a-9c1d-2e3f4a5b6c7f",
        "subject_id": "user-42",
        "type": "user",
        "parent_id": None,
        "expires_at": "2026-03-16T12:00:00Z",
        "authenticated_at": "2026-03-16T09:00:00Z",
        "step_up_satisfied": False,
    },
    "context": {
        "time": "2026-03-16T10:00:00Z",
        "ip": "203.0.113.7",
        "risk_score": 12,
        "request_rate": 30,
    },
}


def build(ids: tuple[str, ...]) -> CompiledSet:
    policies = []
    for template_id in ids:
        template = get_template(template_id)
        assert template is not None, template_id
        policies.append(compile_policy(template_id, f"{template_id}-v1", template.content))
    return compile_set("bench-set", "bench-set-v1", "0" * 64, policies)


def measure(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """``(evaluations per second, microseconds per evaluation)`` over about ``seconds``."""
    for _ in range(200):  # warm-up (first call per thread parses nothing more, but caches warm)
        fn()
    batch, n, start = 1000, 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed, elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    one, five = build(("role-based",)), build(FIVE)
    for compiled in (one, five):
        decision = evaluate_set(compiled, INPUT)
        assert not decision.diagnostics, decision.diagnostics
    print(f"decision of the five-policy set: {evaluate_set(five, INPUT).decision}")

    rows = [
        ("role-based alone", lambda: evaluate_set(one, INPUT)),
        ("five policies (role-based + 4 baselines)", lambda: evaluate_set(five, INPUT)),
        ("regorus set_input + eval_rule, role-based", _raw(one)),
    ]
    content = get_template("role-based").content  # type: ignore[union-attr]
    rows.append(("check_contract, role-based", lambda: check_contract(content)))

    print(f"{'case':<44} {'evals/s':>12} {'us/eval':>9}")
    for label, fn in rows:
        rate, micros = measure(fn, args.seconds)
        print(f"{label:<44} {rate:>12,.0f} {micros:>9.1f}")


def _raw(compiled: CompiledSet) -> Callable[[], object]:
    engine = compiled.policies[0].engine

    def run() -> object:
        engine.set_input(INPUT)
        return engine.eval_rule("data.caracal.authz.result")

    return run


if __name__ == "__main__":
    main()
