"""The bundle under OPA's own engine answers what ``POST …/decisions`` answers.

The files of the served bundle (``.rego`` only: the same files OPA compiles) are loaded into
OPA's Go engine (``opa-golib-python-bindings``, optional: these tests skip without it) and
``data.caracal.authz.result`` is compared field by field with the decision API for every
template alone and for five-policy sets, over a corpus of inputs. Fields only the service
adds (``policy_set_version_id``, ``determining_policies``, ``request_id``, ``step_up.id``)
are left out. Without a session in the input the decision API turns a step-up into ``deny``
(``step_up_session_required``): the fleet has no sessions, so the PEP in front of OPA makes
that call (docs/opa-fleet.md); the comparison applies the same rule to OPA's answer.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.policy_helpers import active_set
from tests.fleet.opa_protocol import verify_bundle

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("opa_bindings") is None,
    reason="OPA's engine (opa-golib-python-bindings) is not installed",
)

TEMPLATES = sorted(
    p for p in Path("policies/templates").glob("*.rego") if not p.name.endswith("_test.rego")
)
NO_SESSION_REASON = "step_up_session_required"


class OpaBundle:
    """The bundle's modules compiled by OPA (``tests/pdp/opa_engine.py`` when present)."""

    def __init__(self, modules: list[tuple[str, str]]) -> None:
        try:
            from tests.pdp.opa_engine import OpaPolicy  # type: ignore[import-not-found]

            self._policy: Any = OpaPolicy(modules)
            self._adapter = True
        except ImportError:
            from opa_bindings import OpaEngine

            self._policy = OpaEngine()
            self._policy.print_handler = lambda message, location: None
            for name, source in modules:
                self._policy.add_policy(name, source)
            self._adapter = False

    def result(self, input: Any) -> Any:
        if self._adapter:
            return self._policy.evaluate(input, "caracal.authz.result")
        from opa_bindings import OpaUndefinedError

        try:
            return self._policy.eval_document("caracal.authz.result", input=input)
        except OpaUndefinedError:
            return None

    def close(self) -> None:
        self._policy.close()


BASE: dict[str, Any] = {
    "subject": {
        "id": "user-42",
        "type": "user",
        "roles": ["editor"],
        "attributes": {"department": "sales", "clearance": 2, "status": "active"},
    },
    "application": {"id": "app-1", "name": "Portal", "credential_type": "token"},
    "resource": {
        "id": "res-1",
        "identifier": "resource://orders",
        "scopes": ["orders:read", "orders:write", "orders:delete"],
    },
    "requested_scopes": ["orders:read", "orders:write"],
    "action": "token_exchange",
    "session": {
        "id": "sess-1",
        "subject_id": "user-42",
        "type": "user",
        "expires_at": "2099-03-16T12:00:00Z",
        "authenticated_at": "2026-03-16T09:00:00Z",
        "step_up_satisfied": False,
    },
    "delegation": {"chain": [], "depth": 0},
    "context": {"time": "2026-03-16T10:00:00Z", "risk_score": 12, "request_rate": 30},
}


def _with(**fields: Any) -> dict[str, Any]:
    result = copy.deepcopy(BASE)
    for dotted, value in fields.items():
        *parents, last = dotted.split("__")
        target = result
        for key in parents:
            target = target[key]
        if value is _REMOVE:
            target.pop(last, None)
        else:
            target[last] = value
    return result


_REMOVE = object()


def corpus() -> Iterator[tuple[str, dict[str, Any]]]:
    """Inputs for every template: the usual request and its edges (each with its own live
    session, so the decision API's session step changes nothing but what it documents)."""
    cases: dict[str, dict[str, Any]] = {
        "usual": _with(),
        "no_session": _with(session=_REMOVE),
        "no_session_risky": _with(session=_REMOVE, context__risk_score=90),
        "no_scopes": _with(requested_scopes=_REMOVE),
        "scopes_empty": _with(requested_scopes=[]),
        "scopes_dup": _with(requested_scopes=["orders:read", "orders:read", "orders:write"]),
        "scopes_mixed": _with(requested_scopes=["orders:read", 1, None, {}, True]),
        "scopes_not_offered": _with(requested_scopes=["orders:read", "billing:refund"]),
        "scopes_unicode": _with(
            requested_scopes=["订单:read", "emoji:🦊"], resource__scopes=["订单:read", "emoji:🦊"]
        ),
        "scopes_delete": _with(requested_scopes=["orders:delete"]),
        "scopes_delete_satisfied": _with(
            requested_scopes=["orders:delete"], session__step_up_satisfied=False
        ),
        "scopes_many": _with(
            requested_scopes=[f"orders:s{i}" for i in range(120)],
            resource__scopes=[f"orders:s{i}" for i in range(0, 120, 2)],
        ),
        "roles_admin": _with(subject__roles=["admin"], requested_scopes=["orders:delete"]),
        "roles_viewer": _with(subject__roles=["viewer"]),
        "roles_none": _with(subject__roles=[]),
        "roles_missing": _with(subject__roles=_REMOVE),
        "roles_wrong_type": _with(subject__roles="admin"),
        "resource_missing": _with(resource=_REMOVE),
        "resource_no_scopes": _with(resource__scopes=[]),
        "risk_high": _with(context__risk_score=90),
        "risk_mid": _with(context__risk_score=55),
        "rate_high": _with(context__request_rate=5000),
        "agent": _with(subject__type="agent"),
        "service": _with(subject__type="service"),
        "agent_delegated": _with(
            subject__type="agent",
            session__type="delegated",
            session__parent_id="sess-0",
            delegation={
                "chain": [
                    {"subject_id": "user-42", "application_id": "app-1", "scopes": ["orders:read"]}
                ],
                "depth": 1,
            },
        ),
        "deep_delegation": _with(
            session__type="delegated", session__parent_id="p", delegation__depth=9
        ),
        "clearance_low": _with(subject__attributes__clearance=0),
        "attributes_missing": _with(subject__attributes=_REMOVE),
        "context_missing": _with(context=_REMOVE),
        "subject_missing": _with(subject=_REMOVE),
        "empty": {},
    }
    for index, (name, value) in enumerate(cases.items()):
        if isinstance(value.get("session"), dict):
            value["session"]["id"] = f"sess-{name}-{index}"
        yield name, value


#: ``(template or set label, corpus case) -> reference`` where OPA and regorus are known to
#: evaluate a template differently (checked to still differ, so a fixed case is noticed).
#: Empty since the templates stopped depending on `not is_x(f)` with ``f`` undefined
#: (docs/policies.md, "Portability to OPA"; tests/pdp/test_opa_conformance.py).
EXPECTED_TO_DIFFER: dict[tuple[str, str], str] = {}


def api_view(answer: dict[str, Any]) -> dict[str, Any]:
    """The decision API's answer without the fields only the service adds."""
    step_up = answer["step_up"]
    return {
        "decision": answer["decision"],
        "reasons": answer["reasons"],
        "granted_scopes": answer["granted_scopes"],
        "obligations": answer["obligations"],
        "step_up": None if step_up is None else {"type": step_up["type"]},
    }


def opa_view(result: Any, input: dict[str, Any]) -> Any:
    """OPA's ``result`` as the decision API would answer it for the same input."""
    if not isinstance(result, dict):
        return result
    step_up = result.get("step_up")
    if step_up is not None and not isinstance(input.get("session"), dict):
        reasons = list(dict.fromkeys([*result["reasons"], NO_SESSION_REASON]))
        return {
            "decision": "deny",
            "reasons": reasons,
            "granted_scopes": [],
            "obligations": result["obligations"],
            "step_up": None,
        }
    return {
        "decision": result["decision"],
        "reasons": result["reasons"],
        "granted_scopes": result["granted_scopes"],
        "obligations": result["obligations"],
        "step_up": None if step_up is None else {"type": step_up["type"]},
    }


def compare(client: TestClient, zone_id: str, label: str) -> int:
    """Evaluate the corpus with the zone's bundle under OPA and with the API; return how many
    inputs were compared."""
    key = client.get(f"/v1/zones/{zone_id}/opa/bundle-key").json()["key"]
    response = client.get(f"/v1/zones/{zone_id}/opa/bundles/active")
    files = verify_bundle(response.content, {zone_id: key}, keyid=zone_id)
    modules = [(name, body.decode()) for name, body in files.items() if name.endswith(".rego")]
    opa = OpaBundle(modules)
    compared = 0
    mismatches: list[str] = []
    try:
        for name, input in corpus():
            reference = EXPECTED_TO_DIFFER.get((label, name))
            answer = client.post(f"/v1/zones/{zone_id}/decisions", json={"input": input})
            assert answer.status_code == 200, answer.text
            expected = api_view(answer.json())
            got = opa_view(opa.result(input), input)
            if reference is not None:
                assert got != expected, f"{label}/{name} agrees now: drop the entry ({reference})"
                continue
            if got != expected:
                mismatches.append(f"{label}/{name}: OPA {got} != API {expected}")
            compared += 1
    finally:
        opa.close()
    assert not mismatches, "\n".join(mismatches)
    return compared


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_each_template_alone(client: TestClient, zone: dict, template: Path) -> None:
    active_set(client, zone["id"], template.read_text())
    assert compare(client, zone["id"], template.stem) > 20


STEP_UP_SHORT = """package caracal.authz

import rego.v1

result := {"decision": "allow", "reasons": ["short"], "step_up": {"type": "mfa", "ttl": 60},
  "obligations": {"log": "short", "watermark": true}} if input.context.risk_score > 50

default result := {"decision": "allow", "reasons": ["calm"], "obligations": {"log": "calm"}}
"""
STEP_UP_LONG = """package caracal.authz

import rego.v1

result := {"decision": "partial", "reasons": ["long", "calm"],
  "granted_scopes": ["orders:read", "orders:write", "x"],
  "step_up": {"type": "webauthn", "ttl": 600.0},
  "obligations": {"log": "long", "extra": {"a": 1}}} if input.context.risk_score > 10
"""
MALFORMED = """package caracal.authz

import rego.v1

kind := object.get(input, ["subject", "type"], "")

result := {"decision": "maybe"} if kind == "agent"

result := {"allow": "yes"} if kind == "service"

result := {"allow": true, "reasons": ["ok", "ok", "fine"]} if not kind in {"agent", "service"}
"""
PARTIAL_SCOPES = """package caracal.authz

import rego.v1

result := {"decision": "partial", "reasons": ["subset"],
  "granted_scopes": [s | some s in input.requested_scopes; s != "orders:write"]} if {
  count(input.requested_scopes) > 1
}

result := true if count(input.requested_scopes) <= 1
"""

SETS = {
    "templates_a": ["role-based", "baseline-scopes", "attribute-based", "baseline-rate-limits"],
    "templates_b": [
        "baseline-step-up-triggers",
        "baseline-session-state",
        "delegation",
        "baseline-delegation-constraints",
        "baseline-resource-constraints",
    ],
}


def _template(stem: str) -> str:
    return Path(f"policies/templates/{stem}.rego").read_text()


@pytest.mark.parametrize(
    "label",
    ["templates_a_plus", "templates_b", "handwritten", "step_up_mix", "partial_mix"],
)
def test_five_policy_sets(client: TestClient, zone: dict, label: str) -> None:
    contents = {
        "templates_a_plus": [*map(_template, SETS["templates_a"]), PARTIAL_SCOPES],
        "templates_b": list(map(_template, SETS["templates_b"])),
        "handwritten": [STEP_UP_SHORT, STEP_UP_LONG, MALFORMED, PARTIAL_SCOPES, STEP_UP_SHORT],
        "step_up_mix": [
            _template("baseline-step-up-triggers"),
            STEP_UP_LONG,
            STEP_UP_SHORT,
            _template("role-based"),
            _template("baseline-scopes"),
        ],
        "partial_mix": [
            PARTIAL_SCOPES,
            _template("role-based"),
            _template("attribute-based"),
            STEP_UP_LONG,
            _template("baseline-resource-constraints"),
        ],
    }[label]
    assert len(contents) == 5
    active_set(client, zone["id"], *contents)
    assert compare(client, zone["id"], label) > 20
