"""In-process PDP throughput: one template alone, then a five-policy set.

Run: ``.venv/bin/python bench/pdp_inprocess.py [--seconds 2]``. Prints evaluations per
second and microseconds per evaluation of ``evaluate_set`` (input conversion, evaluation of
every policy, normalisation and combination), on one thread, and per policy of the set.
``--templates`` instead measures each of the nine templates alone: ``evaluate_set`` and
``eval_rule`` only (the input already set).
``cpu us`` is the thread's CPU time per evaluation (``time.thread_time``): on a loaded
machine it is the steadier figure; wall-clock time also counts the waits for a core.
Target: under 50 us per policy.
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
    load_templates,
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


def measure(fn: Callable[[], object], seconds: float) -> tuple[float, float, float]:
    """``(evaluations per second, wall us per evaluation, CPU us per evaluation)``."""
    for _ in range(200):  # warm-up (the thread's engines are parsed on first use)
        fn()
    batch, n = 500, 0
    start, cpu_start = time.perf_counter(), time.thread_time()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            cpu = time.thread_time() - cpu_start
            return n / elapsed, elapsed / n * 1e6, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--templates", action="store_true", help="measure each template alone instead"
    )
    args = parser.parse_args()
    if args.templates:
        per_template(args.seconds)
        return

    one, five = build(("role-based",)), build(FIVE)
    for compiled in (one, five):
        decision = evaluate_set(compiled, INPUT)
        assert not decision.diagnostics, decision.diagnostics
    print(f"decision of the five-policy set: {evaluate_set(five, INPUT).decision}")

    rows: list[tuple[str, int, Callable[[], object]]] = [
        ("role-based alone", 1, lambda: evaluate_set(one, INPUT)),
        ("five policies (role-based + 4 baselines)", 5, lambda: evaluate_set(five, INPUT)),
        ("regorus set_input + eval_rule, role-based", 1, _raw(one)),
        ("regorus set_input alone", 1, _set_input(one)),
    ]
    for template_id in FIVE:
        rows.append((f"  eval_rule only, {template_id}", 1, _eval_only(template_id)))
    content = get_template("role-based").content  # type: ignore[union-attr]
    rows.append(("check_contract, role-based", 1, lambda: check_contract(content)))

    print(f"{'case':<44} {'evals/s':>10} {'us/eval':>8} {'cpu us':>8} {'cpu us/policy':>14}")
    for label, n_policies, fn in rows:
        rate, micros, cpu = measure(fn, args.seconds)
        per_policy = f"{cpu / n_policies:>14.1f}" if n_policies > 1 else ""
        print(f"{label:<44} {rate:>10,.0f} {micros:>8.1f} {cpu:>8.1f}{per_policy}")


def per_template(seconds: float) -> None:
    """Each template alone: ``evaluate_set`` and ``eval_rule`` only, CPU us per evaluation."""
    print(f"{'template':<34} {'decision':>9} {'evaluate_set cpu us':>20} {'eval_rule cpu us':>17}")
    for template in load_templates():
        compiled = build((template.id,))
        decision = evaluate_set(compiled, INPUT)
        assert not decision.diagnostics, decision.diagnostics
        _, _, whole = measure(lambda c=compiled: evaluate_set(c, INPUT), seconds)
        _, _, rule = measure(_eval_only(template.id), seconds)
        print(f"{template.id:<34} {decision.decision:>9} {whole:>20.1f} {rule:>17.1f}")


def _raw(compiled: CompiledSet) -> Callable[[], object]:
    engine = compiled.policies[0].engine

    def run() -> object:
        engine.set_input(INPUT)
        return engine.eval_rule("data.caracal.authz.result")

    return run


def _set_input(compiled: CompiledSet) -> Callable[[], object]:
    engine = compiled.policies[0].engine
    return lambda: engine.set_input(INPUT)


def _eval_only(template_id: str) -> Callable[[], object]:
    engine = build((template_id,)).policies[0].engine
    engine.set_input(INPUT)
    return lambda: engine.eval_rule("data.caracal.authz.result")


if __name__ == "__main__":
    main()
