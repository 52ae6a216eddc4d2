"""evaluate_set: per-policy normalisation, fail-closed errors and the combination rules."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest

from controlplane.pdp import (
    CompiledPolicy,
    CompiledSet,
    Decision,
    RegoContractError,
    compile_policy,
    compile_set,
    evaluate_set,
    interpret_result,
)

V1 = "package caracal.authz\n\nimport rego.v1\n\n"


def policy(name: str, body: str) -> CompiledPolicy:
    return compile_policy(f"pol-{name}", f"ver-{name}", V1 + body)


def const(name: str, result: Any) -> CompiledPolicy:
    """A policy whose result is the JSON literal ``result``."""
    return policy(name, f"result := {msgspec.json.encode(result).decode()}\n")


def evaluate(*policies: CompiledPolicy, input: dict[str, Any] | None = None) -> Decision:
    return evaluate_set(compile_set("set-1", "set-v1", "ab" * 32, policies), input or {})


def refs(*names: str) -> list[dict[str, str]]:
    return [{"policy_id": f"pol-{n}", "policy_version_id": f"ver-{n}"} for n in names]


# --- single policies ------------------------------------------------------------------------


def test_boolean_true_allows_and_grants_requested_scopes() -> None:
    d = evaluate(const("a", True), input={"requested_scopes": ["x:read", "x:write", "x:read"]})
    assert d.decision == "allow"
    assert d.granted_scopes == ["x:read", "x:write"]
    assert d.determining_policies == refs("a")
    assert d.reasons == [] and d.obligations == {} and d.step_up is None and d.diagnostics == []


def test_boolean_false_denies() -> None:
    d = evaluate(const("a", False), input={"requested_scopes": ["x:read"]})
    assert d.decision == "deny"
    assert d.granted_scopes == []
    assert d.determining_policies == refs("a")


def test_result_reads_the_input() -> None:
    p = policy(
        "a", 'default result := false\nresult := {"allow": true} if input.subject.id == "u1"\n'
    )
    assert evaluate(p, input={"subject": {"id": "u1"}}).decision == "allow"
    assert evaluate(p, input={"subject": {"id": "u2"}}).decision == "deny"


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"allow": True, "reasons": ["ok"]}, "allow"),
        ({"allow": False, "reasons": ["nope"]}, "deny"),
        ({"decision": "allow"}, "allow"),
        ({"decision": "deny"}, "deny"),
        ({"decision": "partial", "granted_scopes": ["a"]}, "partial"),
        ({"decision": "deny", "allow": True}, "deny"),  # decision wins over allow
        ({"allow": True, "unknown_key": 1}, "allow"),  # unknown keys are ignored
    ],
)
def test_object_results(result: dict[str, Any], expected: str) -> None:
    assert evaluate(const("a", result)).decision == expected


def test_reasons_obligations_and_scopes_of_one_policy_pass_through() -> None:
    d = evaluate(
        const(
            "a",
            {
                "decision": "partial",
                "reasons": ["r1", "r2"],
                "granted_scopes": ["s1", "s2"],
                "obligations": {"log": True},
            },
        )
    )
    assert (d.decision, d.reasons, d.granted_scopes, d.obligations) == (
        "partial",
        ["r1", "r2"],
        ["s1", "s2"],
        {"log": True},
    )


def test_granted_scopes_may_be_a_rego_set() -> None:
    p = policy("a", 'result := {"decision": "partial", "granted_scopes": {"b", "a"}}\n')
    assert evaluate(p).granted_scopes == ["a", "b"]


# --- fail closed ----------------------------------------------------------------------------


def test_undefined_result_denies_with_diagnostic() -> None:
    d = evaluate(policy("a", "result := true if input.never\n"))
    assert d.decision == "deny"
    assert d.reasons == ["policy_error"]
    assert d.diagnostics == [
        {"policy_id": "pol-a", "policy_version_id": "ver-a", "error": "result is undefined"}
    ]
    assert d.determining_policies == refs("a")


def test_evaluation_error_denies_with_engine_message() -> None:
    d = evaluate(policy("a", "result := count(input.n) > 0\n"), input={"n": 5})
    assert d.decision == "deny"
    [diag] = d.diagnostics
    assert diag["error"].startswith("ver-a.rego:5:22: `count` requires")
    assert "Stack backtrace" not in diag["error"]


def test_conflicting_rules_deny_with_engine_message() -> None:
    p = policy("a", "result := true if input.a\nresult := false if input.b\n")
    d = evaluate(p, input={"a": True, "b": True})
    assert d.decision == "deny"
    assert "rule conflicts" in d.diagnostics[0]["error"]


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (1, "expected a boolean or an object, got number"),
        ("allow", "expected a boolean or an object, got string"),
        ([True], "expected a boolean or an object, got array"),
        ({}, 'object needs "allow" (boolean) or "decision"'),
        ({"allow": "yes"}, "allow must be a boolean, got string"),
        ({"decision": "maybe"}, 'decision must be "allow", "deny" or "partial", got \'maybe\''),
        ({"decision": ["allow"]}, 'decision must be "allow", "deny" or "partial", got [\'allow\']'),
        ({"decision": {"a": 1}}, 'decision must be "allow", "deny" or "partial", got {\'a\': 1}'),
        ({"allow": True, "reasons": "ok"}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": [1]}, "reasons must be a list of strings"),
        (
            {"decision": "partial", "granted_scopes": "a"},
            "granted_scopes must be a list of strings",
        ),
        ({"allow": True, "obligations": [1]}, "obligations must be an object, got array"),
        ({"allow": True, "step_up": "mfa"}, "step_up must be an object, got string"),
        ({"allow": True, "step_up": {"ttl": 300}}, "step_up.type must be a string of 1 to 64"),
        (
            {"allow": True, "step_up": {"type": "t" * 65, "ttl": 300}},
            "step_up.type must be a string",
        ),
        ({"allow": True, "step_up": {"type": "mfa"}}, "step_up.ttl must be a positive integer"),
        ({"allow": True, "step_up": {"type": "mfa", "ttl": 0}}, "step_up.ttl must be a positive"),
        ({"allow": True, "step_up": {"type": "mfa", "ttl": 1.5}}, "step_up.ttl must be a positive"),
    ],
)
def test_malformed_result_denies_with_shape_error(result: Any, error: str) -> None:
    d = evaluate(const("a", result))
    assert d.decision == "deny"
    assert d.reasons == ["policy_error"]
    [diag] = d.diagnostics
    assert diag["error"].startswith("result has invalid shape: ")
    assert error in diag["error"]


def test_set_result_is_an_invalid_shape() -> None:
    d = evaluate(policy("a", 'result contains "allow"\n'))
    assert d.decision == "deny"
    assert "got set" in d.diagnostics[0]["error"]


def test_result_python_cannot_receive_fails_closed() -> None:
    # regorus holds big integers, but cannot hand one back to Python
    p = policy("a", 'result := {"allow": true, "obligations": {"n": input.n}}\n')
    assert evaluate(p, input={"n": 10**18}).decision == "allow"
    d = evaluate(p, input={"n": 10**30})
    assert d.decision == "deny"
    assert "not an i64" in d.diagnostics[0]["error"]


def test_interpret_result_normalises_integral_float_ttl() -> None:
    outcome = interpret_result({"allow": True, "step_up": {"type": "mfa", "ttl": 300.0}})
    assert not isinstance(outcome, str)
    assert outcome.step_up == {"type": "mfa", "ttl": 300}


# --- combination ----------------------------------------------------------------------------


def test_empty_set_denies() -> None:
    d = evaluate()
    assert d.decision == "deny"
    assert d.reasons == ["no_policies"]
    assert d.determining_policies == []


def test_deny_overrides_allow_and_partial() -> None:
    d = evaluate(
        const("a", {"allow": True, "reasons": ["a-ok"]}),
        const("b", {"decision": "deny", "reasons": ["b-no", "shared"]}),
        const("c", {"decision": "partial", "granted_scopes": ["x"]}),
        const("d", {"allow": False, "reasons": ["shared", "d-no"]}),
        input={"requested_scopes": ["x"]},
    )
    assert d.decision == "deny"
    assert d.determining_policies == refs("b", "d")
    assert d.reasons == ["b-no", "shared", "d-no"]
    assert d.granted_scopes == []
    assert d.step_up is None


def test_an_erroring_policy_makes_the_set_deny() -> None:
    d = evaluate(const("a", True), policy("b", "result := true if input.never\n"))
    assert d.decision == "deny"
    assert d.determining_policies == refs("b")
    assert [x["policy_id"] for x in d.diagnostics] == ["pol-b"]


def test_partial_intersects_granted_scopes_in_first_policy_order() -> None:
    d = evaluate(
        const("a", True),
        const("b", {"decision": "partial", "granted_scopes": ["s3", "s1", "s2"], "reasons": ["b"]}),
        const("c", {"decision": "partial", "granted_scopes": ["s2", "s3", "s4"], "reasons": ["c"]}),
        input={"requested_scopes": ["s1", "s2", "s3", "s4"]},
    )
    assert d.decision == "partial"
    assert d.granted_scopes == ["s3", "s2"]
    assert d.determining_policies == refs("b", "c")
    assert d.reasons == ["b", "c"]


def test_partial_without_granted_scopes_grants_nothing() -> None:
    d = evaluate(const("a", {"decision": "partial"}), input={"requested_scopes": ["s1"]})
    assert (d.decision, d.granted_scopes) == ("partial", [])


def test_all_allow_reasons_are_merged_in_order_without_duplicates() -> None:
    d = evaluate(
        const("a", {"allow": True, "reasons": ["r1", "r2"]}),
        const("b", True),
        const("c", {"allow": True, "reasons": ["r2", "r3"]}),
    )
    assert d.decision == "allow"
    assert d.reasons == ["r1", "r2", "r3"]
    assert d.determining_policies == refs("a", "b", "c")


def test_obligations_merge_first_policy_wins_conflicts() -> None:
    d = evaluate(
        const("a", {"allow": True, "obligations": {"log": "full", "ttl": 60}}),
        const("b", {"allow": True, "obligations": {"ttl": 30, "watermark": True}}),
    )
    assert d.obligations == {"log": "full", "ttl": 60, "watermark": True}


def test_obligations_of_non_determining_policies_are_dropped() -> None:
    d = evaluate(
        const("a", {"allow": True, "obligations": {"log": "full"}}),
        const("b", {"allow": False, "obligations": {"retry_after": 60}}),
    )
    assert (d.decision, d.obligations) == ("deny", {"retry_after": 60})


def test_step_up_on_allow_turns_the_decision_partial() -> None:
    d = evaluate(
        const("a", True),
        const("b", {"allow": True, "step_up": {"type": "mfa", "ttl": 300}, "reasons": ["mfa"]}),
        input={"requested_scopes": ["s1"]},
    )
    assert d.decision == "partial"
    assert d.step_up == {"type": "mfa", "ttl": 300}
    assert d.determining_policies == refs("b")
    assert d.reasons == ["mfa"]
    assert d.granted_scopes == []  # nothing until the step-up is satisfied


def test_step_up_keeps_the_granted_scopes_of_explicit_partials() -> None:
    d = evaluate(
        const("a", {"decision": "partial", "granted_scopes": ["s1", "s2"]}),
        const(
            "b",
            {
                "decision": "partial",
                "granted_scopes": ["s1"],
                "step_up": {"type": "mfa", "ttl": 60},
            },
        ),
    )
    assert (d.decision, d.granted_scopes, d.step_up) == (
        "partial",
        ["s1"],
        {"type": "mfa", "ttl": 60},
    )


def test_shortest_step_up_ttl_wins_and_first_wins_ties() -> None:
    d = evaluate(
        const("a", {"allow": True, "step_up": {"type": "mfa", "ttl": 600}}),
        const("b", {"allow": True, "step_up": {"type": "webauthn", "ttl": 120}}),
        const("c", {"allow": True, "step_up": {"type": "otp", "ttl": 120}}),
    )
    assert d.step_up == {"type": "webauthn", "ttl": 120}
    assert d.determining_policies == refs("a", "b", "c")


def test_deny_drops_step_up() -> None:
    d = evaluate(
        const("a", {"allow": True, "step_up": {"type": "mfa", "ttl": 300}}),
        const("b", False),
    )
    assert (d.decision, d.step_up) == ("deny", None)


def test_step_up_requested_by_a_denying_policy_is_ignored() -> None:
    d = evaluate(const("a", {"allow": False, "step_up": {"type": "mfa", "ttl": 300}}))
    assert (d.decision, d.step_up) == ("deny", None)


def test_decision_encodes_to_the_api_shape() -> None:
    d = evaluate(const("a", {"allow": True, "reasons": ["ok"]}), input={"requested_scopes": ["s"]})
    assert msgspec.json.decode(msgspec.json.encode(d)) == {
        "decision": "allow",
        "reasons": ["ok"],
        "granted_scopes": ["s"],
        "obligations": {},
        "step_up": None,
        "determining_policies": refs("a"),
        "diagnostics": [],
    }


# --- compilation and threads ----------------------------------------------------------------


def test_compile_policy_rejects_unparsable_content() -> None:
    with pytest.raises(RegoContractError) as info:
        compile_policy("p", "v", "package caracal.authz\nresult := {\n")
    assert info.value.message.startswith("v.rego:")


def test_compile_policy_rejects_another_package() -> None:
    with pytest.raises(RegoContractError, match=r"package must be caracal\.authz, found other"):
        compile_policy("p", "v", "package other\nresult := true\n")


def test_compile_set_accepts_triples_and_compiled_policies() -> None:
    compiled = compile_set(
        "s", "sv", "00", [("p1", "v1", V1 + "result := true\n"), const("b", True)]
    )
    assert isinstance(compiled, CompiledSet)
    assert [p.policy_version_id for p in compiled.policies] == ["v1", "ver-b"]
    assert evaluate_set(compiled, {}).decision == "allow"


def test_print_output_is_gathered_and_dropped() -> None:
    p = policy("a", 'result := true if print("hello")\n')
    for _ in range(3):
        assert evaluate(p).decision == "allow"
    assert p.engine.take_prints() == []


def test_each_thread_gets_its_own_engine() -> None:
    # (sprintf %d renders -5 as "--5" in regorus 0.13: use %v)
    p = policy("a", 'result := {"allow": input.n > 0, "reasons": [sprintf("n=%v", [input.n])]}\n')
    compiled = compile_set("s", "sv", "00", [p])
    engines: set[int] = set()
    lock = threading.Lock()

    def work(n: int) -> tuple[str, list[str]]:
        with lock:
            engines.add(id(p.engine))
        d = evaluate_set(compiled, {"n": n})
        return d.decision, d.reasons

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(-200, 200)))
    assert results == [("allow" if n > 0 else "deny", [f"n={n}"]) for n in range(-200, 200)]
    assert len(engines) >= 2  # a regorus Engine must never cross threads
    assert evaluate_set(compiled, {"n": 1}).decision == "allow"  # the main thread's still works


# --- one engine per set ---------------------------------------------------------------------


def test_policies_of_a_set_keep_their_own_rules_and_errors() -> None:
    a = policy("a", 'level := "a"\nresult := {"allow": true, "reasons": [level]}\n')
    b = policy("b", "level := input.n\nresult := count(level) > 0\n")  # errors for a number
    c = policy("c", 'level := "c"\nresult := {"allow": true, "reasons": [level]}\n')
    d = evaluate(a, b, c, input={"n": 5})
    assert d.decision == "deny"
    assert [x["policy_id"] for x in d.diagnostics] == ["pol-b"]
    assert d.diagnostics[0]["error"].startswith("ver-b.rego:6:")
    d = evaluate(a, c, input={"n": 5})
    assert (d.decision, d.reasons) == ("allow", ["a", "c"])


def test_policy_that_names_data_or_repeats_is_evaluated_alone() -> None:
    own = policy(
        "own", 'x := "own"\nresult := {"allow": true, "reasons": [data.caracal.authz.x]}\n'
    )
    other = policy("other", 'x := "other"\nresult := {"allow": true, "reasons": [x]}\n')
    d = evaluate(other, own, other, input={})
    assert d.decision == "allow"
    assert d.reasons == ["other", "own"]
    assert d.determining_policies == refs("other", "own", "other")
    undefined = policy("u", "result := true if input.never\n")
    d = evaluate(own, undefined, undefined)
    assert [x["error"] for x in d.diagnostics] == ["result is undefined"] * 2


def test_input_the_engine_cannot_hold_fails_every_policy_closed() -> None:
    d = evaluate(const("a", True), const("b", True), input={"n": object()})
    assert (d.decision, d.reasons) == ("deny", ["policy_error"])
    assert [x["policy_id"] for x in d.diagnostics] == ["pol-a", "pol-b"]
    assert all(x["error"].startswith("invalid input: ") for x in d.diagnostics)


@pytest.mark.parametrize(
    ("result", "input"),
    [
        (True, {"requested_scopes": ["a", "b", "a", 3]}),
        (False, {}),
        ({"decision": "allow", "reasons": ["r", "r", "s"], "obligations": {"k": 1}}, {}),
        ({"decision": "partial", "granted_scopes": ["x", "y", "x"], "reasons": ["p"]}, {}),
        ({"decision": "partial"}, {}),
        ({"allow": True, "step_up": {"type": "otp", "ttl": 60}}, {"requested_scopes": ["a"]}),
        (
            {"decision": "partial", "granted_scopes": ["x"], "step_up": {"type": "otp", "ttl": 9}},
            {},
        ),
        ({"allow": False, "step_up": {"type": "otp", "ttl": 60}}, {}),
        ("not a result", {}),
    ],
)
def test_a_one_policy_set_decides_as_the_general_combination(result: Any, input: Any) -> None:
    """The one-policy fast path gives what the general combination gives for that policy."""
    from controlplane.pdp.evaluate import (
        POLICY_ERROR_REASON,
        PolicyOutcome,
        _combine,
        _evaluate_one,
    )

    compiled = const("a", result)
    outcome = _evaluate_one(compiled, input)
    diagnostics: list[dict[str, str]] = []
    if isinstance(outcome, str):
        diagnostics.append({"policy_id": "pol-a", "policy_version_id": "ver-a", "error": outcome})
        outcome = PolicyOutcome("deny", (POLICY_ERROR_REASON,))
    assert evaluate(compiled, input=input) == _combine([(compiled, outcome)], diagnostics, input)


def test_a_one_policy_set_reports_engine_errors_like_a_larger_set() -> None:
    failing = policy("e", 'result := {"allow": true} if input.x == 1\nresult := false if true\n')
    alone = evaluate(failing, input={"x": 1})
    with_other = evaluate(failing, const("b", True), input={"x": 1})
    assert alone.decision == with_other.decision == "deny"
    assert alone.diagnostics == with_other.diagnostics
    assert len(alone.diagnostics) == 1
