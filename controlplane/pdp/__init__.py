"""Policy decision point: the Rego contract, compiled policy sets, evaluation and combination."""

from controlplane.pdp.contract import (
    PACKAGE,
    RESULT_RULE,
    RegoContractError,
    check_contract,
    clean_engine_message,
)
from controlplane.pdp.evaluate import (
    CompiledPolicy,
    CompiledSet,
    Decision,
    DecisionValue,
    PolicyOutcome,
    compile_policy,
    compile_set,
    evaluate_set,
    interpret_result,
)
from controlplane.pdp.rego_test_runner import TestReport, TestResult, run_rego_tests
from controlplane.pdp.templates import TEMPLATE_IDS, Template, get_template, load_templates

__all__ = [
    "PACKAGE",
    "RESULT_RULE",
    "TEMPLATE_IDS",
    "CompiledPolicy",
    "CompiledSet",
    "Decision",
    "DecisionValue",
    "PolicyOutcome",
    "RegoContractError",
    "Template",
    "TestReport",
    "TestResult",
    "check_contract",
    "clean_engine_message",
    "compile_policy",
    "compile_set",
    "evaluate_set",
    "get_template",
    "interpret_result",
    "load_templates",
    "run_rego_tests",
]
