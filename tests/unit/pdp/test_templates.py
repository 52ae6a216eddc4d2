"""The nine built-in templates: catalogue, contract, Rego unit tests, and a realistic set."""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

import pytest

from controlplane.pdp import (
    TEMPLATE_IDS,
    Template,
    check_contract,
    compile_policy,
    compile_set,
    evaluate_set,
    get_template,
    load_templates,
    run_rego_tests,
)
from controlplane.pdp.templates import TEMPLATE_DIR

CONTRACT_IDS = [
    "role-based",
    "attribute-based",
    "delegation",
    "baseline-scopes",
    "baseline-resource-constraints",
    "baseline-delegation-constraints",
    "baseline-session-state",
    "baseline-step-up-triggers",
    "baseline-rate-limits",
]


def test_catalogue_lists_the_contract_ids_in_order() -> None:
    assert list(TEMPLATE_IDS) == CONTRACT_IDS
    assert [t.id for t in load_templates()] == CONTRACT_IDS


def test_catalogue_is_read_once_and_returned_as_a_fresh_list() -> None:
    first, second = load_templates(), load_templates()
    assert first == second and first is not second
    assert all(a is b for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("template", load_templates(), ids=lambda t: t.id)
def test_template_header_and_contract(template: Template) -> None:
    assert template.name and not template.name.startswith("#")
    assert len(template.description) > 60
    assert "\n" not in template.description
    assert template.content.startswith("# name: ")
    assert "\npackage caracal.authz\n" in template.content
    check_contract(template.content, f"{template.id}.rego")


def test_names_follow_the_reference() -> None:
    role_based = get_template("role-based")
    assert role_based is not None
    assert role_based.name == "Role-Based Access Control"
    assert get_template("baseline-rate-limits").name == "Baseline: Rate Limits"  # type: ignore[union-attr]
    assert get_template("no-such-template") is None


def test_multi_line_description_is_joined() -> None:
    description = get_template("role-based").description  # type: ignore[union-attr]
    assert description.startswith("Grants the requested scopes that the subject's roles allow.")
    assert description.endswith("Edit role_scopes to match your roles.")


def test_template_rego_unit_tests_all_pass() -> None:
    report = run_rego_tests(TEMPLATE_DIR)
    failures = [f"{r.file}::{r.name}: {r.error}" for r in report.results if not r.passed]
    assert failures == []
    assert report.contract_errors == [] and report.load_errors == []
    assert report.ok
    per_file = Counter(r.file for r in report.results)
    assert set(per_file) == {f"{i}_test.rego" for i in CONTRACT_IDS}
    assert min(per_file.values()) >= 7


@pytest.mark.parametrize("template", load_templates(), ids=lambda t: t.id)
def test_template_always_answers_even_for_odd_input(template: Template) -> None:
    """Empty, null and wrongly typed fields give a decision, not an engine error."""
    compiled = compile_set("s", "v", "0", [compile_policy(template.id, "v1", template.content)])
    odd_inputs: list[dict[str, Any]] = [
        {},
        dict.fromkeys(
            ("subject", "application", "resource", "requested_scopes", "session", "delegation"),
            None,
        ),
        {
            "subject": "x",
            "application": 1,
            "resource": [],
            "requested_scopes": "orders:read",
            "session": 5,
            "delegation": {"chain": "z", "depth": "q"},
            "context": {"time": 5, "risk_score": "a", "request_rate": "b"},
        },
        {
            "subject": {"roles": "admin", "attributes": [], "type": 3},
            "requested_scopes": [1, None, {"a": 1}],
            "resource": {"scopes": "x", "identifier": 5},
            "delegation": {"chain": [1, "x", {"scopes": "a"}]},
            "session": {"expires_at": 5, "authenticated_at": None, "parent_id": 3, "type": 1},
        },
    ]
    for odd in odd_inputs:
        decision = evaluate_set(compiled, odd)
        assert decision.diagnostics == [], (odd, decision.diagnostics)


# A realistic request through all nine templates, then variations of it.
REQUEST: dict[str, Any] = {
    "subject": {
        "id": "user-42",
        "type": "user",
        "roles": ["editor"],
        "attributes": {"department": "sales", "clearance": 2, "status": "active"},
    },
    "application": {
        "id": "app-1",
        "name": "Portal",
        "credential_type": "token",
        "traits": ["first_party"],
    },
    "resource": {
        "id": "res-1",
        "identifier": "resource://orders",
        "scopes": ["orders:read", "orders:write", "orders:delete"],
    },
    "requested_scopes": ["orders:read", "orders:write"],
    "session": {
        "id": "sess-1",
        "subject_id": "user-42",
        "type": "user",
        "parent_id": None,
        "expires_at": "2026-03-16T12:00:00Z",
        "authenticated_at": "2026-03-16T09:00:00Z",
        "step_up_satisfied": False,
    },
    "context": {"time": "2026-03-16T10:00:00Z", "risk_score": 10, "request_rate": 30},
}


@pytest.fixture(scope="module")
def all_nine() -> Any:
    policies = [compile_policy(t.id, f"{t.id}-v1", t.content) for t in load_templates()]
    return compile_set("set", "set-v1", "f" * 64, policies)


def variant(**changes: Any) -> dict[str, Any]:
    request = copy.deepcopy(REQUEST)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = request
        for key in path:
            target = target[key]
        target[last] = value
    return request


def test_realistic_request_is_allowed_by_all_nine(all_nine: Any) -> None:
    d = evaluate_set(all_nine, REQUEST)
    assert d.decision == "allow", d
    assert d.diagnostics == []
    assert d.granted_scopes == ["orders:read", "orders:write"]
    assert len(d.determining_policies) == 9
    assert d.obligations == {"rate_limit": {"limit": 600, "observed": 30}}


def test_sensitive_scope_asks_for_step_up(all_nine: Any) -> None:
    request = variant(
        requested_scopes=["orders:read", "orders:delete"],
        subject__roles=["admin"],
        subject__attributes={"clearance": 3, "status": "active"},
    )
    d = evaluate_set(all_nine, request)
    assert d.decision == "partial"
    assert d.step_up == {"type": "mfa", "ttl": 300}
    assert d.granted_scopes == ["orders:read"]
    assert d.determining_policies == [
        {
            "policy_id": "baseline-step-up-triggers",
            "policy_version_id": "baseline-step-up-triggers-v1",
        }
    ]
    satisfied = copy.deepcopy(request)
    satisfied["session"]["step_up_satisfied"] = True
    assert evaluate_set(all_nine, satisfied).decision == "allow"


def test_expired_session_and_rate_limit_deny_together(all_nine: Any) -> None:
    d = evaluate_set(
        all_nine,
        variant(session__expires_at="2026-03-16T09:30:00Z", context__request_rate=1000),
    )
    assert d.decision == "deny"
    assert d.reasons == ["session_expired", "rate_limit_exceeded"]
    assert [p["policy_id"] for p in d.determining_policies] == [
        "baseline-session-state",
        "baseline-rate-limits",
    ]
    assert d.obligations["retry_after"] == 60


def test_roles_and_scopes_narrow_to_partial(all_nine: Any) -> None:
    d = evaluate_set(
        all_nine,
        variant(subject__roles=["viewer"], requested_scopes=["orders:read", "orders:ship"]),
    )
    assert d.decision == "partial"
    assert d.granted_scopes == ["orders:read"]
    assert d.step_up is None


@pytest.mark.parametrize("template_id", CONTRACT_IDS)
def test_cost_grows_linearly_with_list_sizes(template_id: str) -> None:
    """A decision caller controls the input: 40,000 scopes in every list (about 1 MB, the body
    limit) must not make a template scan one list per element of another (quadratic: many
    seconds, the process stalled meanwhile). Linear costs well under a second."""
    template = get_template(template_id)
    assert template is not None
    compiled = compile_set(
        "s", "v", "0" * 64, [compile_policy(template_id, "v1", template.content)]
    )
    scopes = [f"orders:s{i}" for i in range(40_000)]
    hop = {"subject_id": "u", "application_id": "app", "scopes": scopes}
    big = {
        "subject": {"id": "u", "type": "agent", "roles": ["admin"], "attributes": {}},
        "application": {"id": "app", "traits": scopes},
        "resource": {"identifier": "r", "scopes": list(reversed(scopes))},
        "requested_scopes": scopes,
        "delegation": {"chain": [hop, hop, hop]},
        "context": {"risk_score": 1, "request_rate": 1},
    }
    started = time.perf_counter()
    evaluate_set(compiled, big)
    assert time.perf_counter() - started < 3.0
