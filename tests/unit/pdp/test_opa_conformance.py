"""The templates mean the same under OPA's engine as under regorus (issue 13).

Users test policies with ``opa test`` and may run them on OPA servers, while the PDP runs
regorus. Two checks, each template against both engines:

* every ``test_`` rule of ``policies/templates/*_test.rego`` holds under OPA too (regorus
  runs them in ``test_templates.py``);
* ``data.caracal.authz.result`` is the same value under both for every input of
  ``opa_corpus.corpus()``: normal, edge and wrongly typed requests. regorus evaluates as the
  PDP does (``compile_policy``'s engine, ``set_input``, ``eval_rule``).

Needs OPA's bindings (``opa-golib-python-bindings``, installed by ``make install``); skips
without them.
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.pdp import (
    Template,
    compile_policy,
    compile_set,
    evaluate_set,
    get_template,
    interpret_result,
    load_templates,
)
from controlplane.pdp.contract import RESULT_RULE
from controlplane.pdp.opa_engine import (
    UNDEFINED,
    OpaEvalError,
    OpaPolicy,
    as_json,
    opa_available,
    run_opa_tests,
)
from controlplane.pdp.templates import TEMPLATE_DIR
from tests.unit.pdp.opa_corpus import KNOWN_DIFFERENCES, corpus

pytestmark = pytest.mark.skipif(
    not opa_available(),
    reason="OPA's engine is not installed: pip install --ignore-requires-python "
    "opa-golib-python-bindings==0.4.4 (make install does)",
)

CORPUS = list(corpus())


def test_every_template_test_rule_holds_under_opa() -> None:
    report = run_opa_tests(TEMPLATE_DIR)
    failures = [f"{r.file}::{r.name}: {r.error}" for r in report.results if not r.passed]
    assert not failures, "\n".join(failures)
    assert report.load_errors == [] and report.contract_errors == []
    assert len(report.results) >= 93


def test_corpus_names_are_unique() -> None:
    names = [name for name, _ in CORPUS]
    assert len(names) == len(set(names))
    assert len(names) > 300


def regorus_answer(engine: Any, input: Any) -> Any:
    """``result`` as the PDP's engine gives it, JSON-shaped; ``error: …`` for an error."""
    try:
        engine.set_input(input)
        value = engine.eval_rule(RESULT_RULE)
    except (RuntimeError, TypeError, ValueError) as exc:
        return f"error: {str(exc).splitlines()[0]}"
    finally:
        engine.take_prints()
    return UNDEFINED if value is None else as_json(value)


def opa_answer(policy: OpaPolicy, input: Any) -> Any:
    """``result`` under OPA; ``error: …`` for an error."""
    try:
        return policy.evaluate(input)
    except OpaEvalError as exc:
        return f"error: {exc.message}"


def same(a: Any, b: Any) -> bool:
    """Equal values, or both an error (the PDP denies either way; the texts differ)."""
    errors = [isinstance(v, str) and v.startswith("error: ") for v in (a, b)]
    return all(errors) or (not any(errors) and a == b)


def short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@pytest.mark.parametrize("template", load_templates(), ids=lambda t: t.id)
def test_result_is_the_same_under_both_engines(template: Template) -> None:
    engine = compile_policy(template.id, "v1", template.content).engine
    differences = []
    with OpaPolicy([(f"{template.id}.rego", template.content)]) as policy:
        for name, input in CORPUS:
            ours, theirs = regorus_answer(engine, input), opa_answer(policy, input)
            if not same(ours, theirs):
                differences.append(f"{name}:\n  regorus: {short(ours)}\n  OPA:     {short(theirs)}")
    assert not differences, f"{len(differences)} inputs differ:\n" + "\n".join(differences)


def decision_of(answer: Any) -> str:
    """The decision the PDP would make from a raw ``result`` answer, or ``"error"``."""
    if isinstance(answer, str) and answer.startswith("error: "):
        return "error"
    outcome = interpret_result(None if answer is UNDEFINED else answer)
    return "error" if isinstance(outcome, str) else outcome.decision


STRICTNESS = {"allow": 0, "partial": 1, "deny": 2, "error": 2}  # an error denies


@pytest.mark.parametrize("name", KNOWN_DIFFERENCES)
def test_known_differences_stay_as_documented_and_opa_is_never_laxer(name: str) -> None:
    template_id, input, regorus_expected, opa_expected = KNOWN_DIFFERENCES[name]
    template = get_template(template_id)
    assert template is not None
    engine = compile_policy(template.id, "v1", template.content).engine
    with OpaPolicy([(f"{template.id}.rego", template.content)]) as policy:
        ours, theirs = regorus_answer(engine, input), opa_answer(policy, input)
    found = (decision_of(ours), decision_of(theirs))
    assert found == (regorus_expected, opa_expected), f"regorus: {ours}\nOPA: {theirs}"
    assert STRICTNESS[found[1]] >= STRICTNESS[found[0]]
    if regorus_expected == "error":  # the PDP turns an engine error into a denial
        compiled = compile_set("s", "v", "0", [compile_policy(template_id, "v1", template.content)])
        decision = evaluate_set(compiled, input)
        assert (decision.decision, decision.reasons) == ("deny", ["policy_error"])
