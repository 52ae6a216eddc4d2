"""check_contract: parse, ``package caracal.authz`` and a rule named ``result``."""

from __future__ import annotations

import time

import pytest

from controlplane.pdp import RegoContractError, check_contract, clean_engine_message

V1 = "package caracal.authz\n\nimport rego.v1\n\n"


def contract_error(content: str, name: str = "policy.rego") -> RegoContractError:
    with pytest.raises(RegoContractError) as info:
        check_contract(content, name)
    return info.value


@pytest.mark.parametrize(
    "content",
    [
        "package caracal.authz\nresult := true\n",
        V1 + 'result := {"allow": true} if input.subject.id == "u1"\n',
        # rego v1 syntax without the import: regorus parses v1 by default
        'package caracal.authz\nresult := {"allow": true} if { "admin" in input.subject.roles }\n',
        V1 + 'default result := {"allow": false}\n',
        V1 + "result := true if input.a\nelse := false\n",
        # result undefined for an empty input is fine: it is a rule all the same
        V1 + 'result := {"decision": "partial", "granted_scopes": s} if s := input.scopes\n',
        # a partial object named result is a rule too
        V1 + 'result[k] := true if { some k in ["allow"] }\n',
        # helpers and functions next to result
        V1 + "f(x) := x + 1\nresult := f(1) == 2\n",
        # comments and strings that mention result( do not confuse the check
        V1 + '# result(x) is not a function here\nresult := "result(x)" != ""\n',
        # ... also when result is undefined for an empty input (the AST decides)
        V1 + "# result(x) is not a function here\nresult := true if input.never\n",
    ],
)
def test_valid_modules_pass(content: str) -> None:
    check_contract(content)


def test_parse_error_is_one_readable_line_with_location() -> None:
    err = contract_error("package caracal.authz\nresult := {\n", "mine.rego")
    assert err.message.startswith("mine.rego:")
    assert "\n" not in err.message
    assert "Stack backtrace" not in err.message
    assert "Stack backtrace" not in err.detail
    assert "mine.rego:" in err.detail


def test_v0_rule_body_without_if_is_rejected() -> None:
    err = contract_error('package caracal.authz\nresult = {"allow": true} { input.x }\n')
    assert err.message == "policy.rego:2:26: `if` keyword is required before rule body"
    assert "^" in err.detail  # regorus' caret under the offending column


def test_missing_package_is_rejected() -> None:
    err = contract_error("result := true\n")
    assert "policy.rego:1:1" in err.message
    assert "package" in err.message


def test_empty_content_is_rejected() -> None:
    assert "package" in contract_error("").message


def test_wrong_package_is_rejected() -> None:
    err = contract_error("package foo.bar\nresult := true\n", "p.rego")
    assert err.message == "p.rego: package must be caracal.authz, found foo.bar"


def test_sub_package_is_rejected() -> None:
    err = contract_error("package caracal.authz.extra\nresult := true\n")
    assert "found caracal.authz.extra" in err.message


def test_missing_result_is_rejected() -> None:
    err = contract_error(V1 + "allow := true\n")
    assert 'policy must define a rule named "result"' in err.message


def test_result_defined_only_through_a_ref_head_is_rejected() -> None:
    # result.allow := true makes data.caracal.authz.result a document, not a rule
    err = contract_error(V1 + "result.allow := true\n")
    assert 'policy must define a rule named "result"' in err.message


def test_result_function_is_rejected() -> None:
    err = contract_error(V1 + "result(x) := x\n")
    assert err.message == "policy.rego: result must be a rule, not a function"


def test_default_result_function_is_rejected() -> None:
    err = contract_error(V1 + "default result(_) := false\nresult(x) := x\n")
    assert "not a function" in err.message


def test_unsafe_variable_reached_by_result_is_rejected() -> None:
    err = contract_error(V1 + "result := x\n")
    assert err.message.startswith("policy.rego:5:11:")
    assert "var x is unsafe" in err.message


def test_unknown_function_reached_by_result_is_rejected() -> None:
    err = contract_error(V1 + "result := true if no_such_builtin(1)\n")
    assert "could not find function no_such_builtin" in err.message


def test_runtime_error_on_empty_input_is_not_a_contract_violation() -> None:
    # it only fails closed at evaluation; the module itself is well formed
    check_contract(V1 + 'result := {"allow": true, "n": 1 / count([])}\n')


def test_clean_engine_message_strips_backtrace_and_keeps_location() -> None:
    raw = (
        "\n--> p.rego:3:7\n  |\n3 | x := y\n  |       ^\nerror: var y is unsafe\n\n"
        "Stack backtrace:\n   0: <unknown>\n   1: method_vectorcall\n"
    )
    one_line, detail = clean_engine_message(raw)
    assert one_line == "p.rego:3:7: var y is unsafe"
    assert detail.startswith("--> p.rego:3:7")
    assert detail.endswith("error: var y is unsafe")


def test_clean_engine_message_without_location() -> None:
    assert clean_engine_message("not a valid rule path\n\nStack backtrace:\n 0: x") == (
        "not a valid rule path",
        "not a valid rule path",
    )


def test_fast_enough_to_run_per_request() -> None:
    content = V1 + "\n".join(
        f'r{i} := true if input.subject.roles[_] == "role{i}"' for i in range(100)
    )
    content += '\nresult := {"allow": r1}\n'
    check_contract(content)
    start = time.perf_counter()
    for _ in range(10):
        check_contract(content)
    assert (time.perf_counter() - start) / 10 < 0.05
