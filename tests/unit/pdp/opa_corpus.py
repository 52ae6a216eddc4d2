"""Inputs every template is evaluated with under regorus and under OPA (``test_opa_conformance``).

``corpus()`` yields ``(name, input)`` pairs: a realistic request, every field of it
removed, set to ``null`` and set to each wrong type, inputs that are not objects, and cases
written for the templates' own rules (role names, delegation chains, session times, rate
limits, huge and unicode scope lists). Every template meets every input: a field one
template ignores is one another template reads.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

#: A realistic request (docs/policy-input.md), allowed by every template.
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
    "action": "token_exchange",
    "session": {
        "id": "sess-1",
        "subject_id": "user-42",
        "type": "user",
        "parent_id": None,
        "expires_at": "2026-03-16T12:00:00Z",
        "authenticated_at": "2026-03-16T09:00:00Z",
        "step_up_satisfied": False,
    },
    "delegation": {
        "chain": [{"subject_id": "user-42", "application_id": "app-1", "scopes": ["orders:read"]}],
        "depth": 1,
    },
    "context": {
        "time": "2026-03-16T10:00:00Z",
        "ip": "203.0.113.7",
        "risk_score": 12,
        "request_rate": 30,
    },
}

#: Values of every JSON type but null; each field of REQUEST is set to each in turn.
WRONG_TYPES: dict[str, Any] = {
    "string": "orders:read",
    "empty_string": "",
    "number": 7,
    "float": 2.5,
    "bool": True,
    "empty_array": [],
    "array": ["admin", 1, None],
    "empty_object": {},
    "object": {"admin": True},
}

#: Inputs that are not objects (``None``, no input at all, is not sent by the PDP).
NOT_OBJECTS: dict[str, Any] = {
    "input_string": "not an object",
    "input_empty_string": "",
    "input_number": 42,
    "input_bool": True,
    "input_false": False,
    "input_empty_array": [],
    "input_array": [REQUEST],
}


def leaf_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path of an object value (objects and their members, not array elements)."""
    if isinstance(value, dict):
        for key, member in value.items():
            path = (*prefix, key)
            yield path
            yield from leaf_paths(member, path)


def changed(
    base: dict[str, Any], path: tuple[str, ...], value: Any, *, remove: bool = False
) -> dict[str, Any]:
    """A deep copy of ``base`` with ``path`` set to ``value`` (or removed)."""
    result = copy.deepcopy(base)
    target = result
    for key in path[:-1]:
        target = target[key]
    if remove:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


def with_fields(**fields: Any) -> dict[str, Any]:
    """REQUEST with ``a__b=value`` fields set (``__`` separates path keys)."""
    result = copy.deepcopy(REQUEST)
    for dotted, value in fields.items():
        result = changed(result, tuple(dotted.split("__")), value)
    return result


def hop(subject: str, application: str, scopes: Any) -> dict[str, Any]:
    return {"subject_id": subject, "application_id": application, "scopes": scopes}


def delegated(chain: Any, **fields: Any) -> dict[str, Any]:
    """An agent acting for user-42 through ``chain``, in a delegated session."""
    return with_fields(
        subject__id="agent-7",
        subject__type="agent",
        application__id="app-agent",
        session__type="delegated",
        session__parent_id="sess-0",
        delegation={"chain": chain, "depth": len(chain) if isinstance(chain, list) else 0},
        **fields,
    )


MANY = [f"orders:s{i}" for i in range(5_000)]

#: Cases written for the templates' rules: normal requests and their edges.
CASES: dict[str, Any] = {
    # requested scopes
    "scopes_empty": with_fields(requested_scopes=[]),
    "scopes_duplicates": with_fields(requested_scopes=["orders:read", "orders:read"]),
    "scopes_mixed_types": with_fields(requested_scopes=["orders:read", 1, None, {}, [], True]),
    "scopes_only_non_strings": with_fields(requested_scopes=[1, 2.5, None]),
    "scopes_empty_string": with_fields(requested_scopes=[""]),
    "scopes_no_colon": with_fields(requested_scopes=["read", "admin"]),
    "scopes_many_colons": with_fields(requested_scopes=["a:b:read", "x:orders:write:"]),
    "scopes_trailing_colon": with_fields(requested_scopes=["orders:"]),
    "scopes_uppercase": with_fields(requested_scopes=["Orders:Read"]),
    "scopes_unicode": with_fields(requested_scopes=["commandes:lire", "订单:read", "ордер:write"]),
    "scopes_unicode_offered": with_fields(
        requested_scopes=["订单:read", "emoji:🦊"], resource__scopes=["订单:read", "emoji:🦊"]
    ),
    "scopes_200_chars": with_fields(requested_scopes=["o:" + "a" * 198]),
    "scopes_201_chars": with_fields(requested_scopes=["o:" + "a" * 199]),
    "scopes_64": with_fields(requested_scopes=[f"orders:s{i}" for i in range(64)]),
    "scopes_65": with_fields(requested_scopes=[f"orders:s{i}" for i in range(65)]),
    "scopes_5000": with_fields(requested_scopes=MANY, resource__scopes=MANY),
    "scopes_5000_admin": with_fields(
        requested_scopes=MANY, resource__scopes=MANY[::-1], subject__roles=["admin"]
    ),
    "scopes_5000_not_offered": with_fields(requested_scopes=MANY, resource__scopes=[]),
    "scopes_sensitive": with_fields(requested_scopes=["orders:read", "orders:delete"]),
    "scopes_sensitive_listed": with_fields(requested_scopes=["payments:write"]),
    "scopes_sensitive_satisfied": with_fields(
        requested_scopes=["orders:delete"], session__step_up_satisfied=True
    ),
    "scopes_sensitive_truthy": with_fields(
        requested_scopes=["orders:delete"], session__step_up_satisfied="yes"
    ),
    "scopes_write_public_client": with_fields(application__credential_type="public"),
    "scopes_read_public_client": with_fields(
        application__credential_type="public", requested_scopes=["orders:read", "orders:list"]
    ),
    # roles
    "roles_viewer": with_fields(subject__roles=["viewer"]),
    "roles_admin": with_fields(subject__roles=["admin"], requested_scopes=["orders:delete"]),
    "roles_admin_unoffered": with_fields(
        subject__roles=["admin"], requested_scopes=["billing:refund"]
    ),
    "roles_admin_non_string_offered": with_fields(
        subject__roles=["admin"], requested_scopes=[1, "orders:read"], resource__scopes=[1]
    ),
    "roles_auditor": with_fields(
        subject__roles=["auditor"], requested_scopes=["audit:export", "x:audit:export"]
    ),
    "roles_unknown": with_fields(subject__roles=["intern"]),
    "roles_empty": with_fields(subject__roles=[]),
    "roles_non_strings": with_fields(subject__roles=[1, None, ["viewer"], {"viewer": 1}]),
    "roles_5000": with_fields(subject__roles=[f"role-{i}" for i in range(5_000)] + ["viewer"]),
    "roles_unicode": with_fields(subject__roles=["éditeur", "viewer"]),
    # attributes
    "clearance_0": with_fields(subject__attributes__clearance=0),
    "clearance_4_security": with_fields(
        subject__attributes={"clearance": 4, "department": "security"},
        requested_scopes=["orders:admin"],
    ),
    "clearance_4_security_agent": with_fields(
        subject__attributes={"clearance": 4, "department": "security"},
        subject__type="agent",
        requested_scopes=["orders:admin"],
    ),
    "clearance_float": with_fields(subject__attributes__clearance=1.5),
    "clearance_negative": with_fields(subject__attributes__clearance=-1),
    "status_suspended": with_fields(subject__attributes__status="suspended"),
    "status_unicode": with_fields(subject__attributes__status="suspendu"),
    "department_missing_admin": with_fields(
        subject__attributes={"clearance": 9}, requested_scopes=["orders:admin"]
    ),
    "subject_type_missing_admin": with_fields(
        subject={"id": "user-42", "attributes": {"clearance": 9, "department": "security"}},
        requested_scopes=["orders:admin"],
    ),
    "department_null_admin": with_fields(
        subject__attributes={"clearance": 9, "department": None}, requested_scopes=["admin"]
    ),
    # context
    "risk_70": with_fields(context__risk_score=70),
    "risk_71": with_fields(context__risk_score=71),
    "risk_60": with_fields(context__risk_score=60),
    "risk_float": with_fields(context__risk_score=59.999),
    "risk_negative": with_fields(context__risk_score=-5),
    "rate_at_limit": with_fields(context__request_rate=600),
    "rate_over_limit": with_fields(context__request_rate=601),
    "rate_near": with_fields(context__request_rate=481),
    "rate_float": with_fields(context__request_rate=480.5),
    "rate_zero": with_fields(context__request_rate=0),
    "rate_agent_over": with_fields(subject__type="agent", context__request_rate=121),
    "rate_service": with_fields(subject__type="service", context__request_rate=2999),
    "rate_unknown_type": with_fields(subject__type="robot", context__request_rate=301),
    "time_bad": with_fields(context__time="yesterday"),
    "time_empty": with_fields(context__time=""),
    # session
    "session_expired": with_fields(session__expires_at="2026-03-16T10:00:00Z"),
    "session_expiry_empty": with_fields(session__expires_at=""),
    "session_expiry_bad": with_fields(session__expires_at="soon"),
    "session_authenticated_old": with_fields(session__authenticated_at="2026-03-15T21:59:59Z"),
    "session_authenticated_future": with_fields(session__authenticated_at="2026-03-16T10:06:00Z"),
    "session_authenticated_skew": with_fields(session__authenticated_at="2026-03-16T10:04:00Z"),
    "session_authenticated_bad": with_fields(session__authenticated_at="an hour ago"),
    "session_other_subject": with_fields(session__subject_id="user-2"),
    "session_subject_unicode": with_fields(subject__id="ユーザー", session__subject_id="ユーザー"),
    "session_no_subject_id": with_fields(subject={"type": "user"}),
    "session_delegated_without_parent": with_fields(
        session__type="delegated", session__subject_id="user-1"
    ),
    "session_parent_empty": with_fields(session__parent_id=""),
    "session_parent_number": with_fields(session__parent_id=3),
    "session_only_parent": with_fields(session__parent_id="s-0", session__subject_id="user-1"),
    "session_engine_clock": changed(REQUEST, ("context", "time"), None, remove=True),
    # delegation
    "delegation_valid": delegated(
        [
            hop("user-42", "app-planner", ["orders:read", "orders:write"]),
            hop("app-planner", "app-agent", ["orders:read", "orders:write"]),
        ]
    ),
    "delegation_partial": delegated(
        [hop("user-42", "app-agent", ["orders:read"])],
    ),
    "delegation_escalation": delegated(
        [
            hop("user-42", "app-planner", ["orders:read"]),
            hop("app-planner", "app-agent", ["orders:read", "orders:write"]),
        ]
    ),
    "delegation_cycle": delegated(
        [
            hop("user-42", "app-agent", ["orders:read"]),
            hop("app-agent", "app-agent", ["orders:read"]),
        ]
    ),
    "delegation_too_long": delegated(
        [hop("user-42", f"app-{i}", ["orders:read"]) for i in range(5)]
        + [hop("x", "app-agent", ["orders:read"])]
    ),
    "delegation_depth_4": delegated([hop("user-42", "app-agent", ["orders:read"])] * 4),
    "delegation_wrong_application": delegated([hop("user-42", "app-other", ["orders:read"])]),
    "delegation_admin_scope": delegated([hop("user-42", "app-agent", ["orders:admin"])]),
    "delegation_incomplete_hop": delegated([{"subject_id": "user-42", "scopes": ["orders:read"]}]),
    "delegation_empty_ids": delegated([hop("", "", ["orders:read"])]),
    "delegation_hop_not_object": delegated(["user-42", 1, None]),
    "delegation_hop_scopes_wrong": delegated([hop("user-42", "app-agent", "orders:read")]),
    "delegation_hop_scopes_mixed": delegated(
        [hop("user-42", "app-agent", [1, None, "orders:read"])]
    ),
    "delegation_depth_mismatch": changed(
        delegated([hop("user-42", "app-agent", ["orders:read"])]), ("delegation", "depth"), 2
    ),
    "delegation_depth_string": changed(
        delegated([hop("user-42", "app-agent", ["orders:read"])]), ("delegation", "depth"), "1"
    ),
    "delegation_depth_null": changed(
        delegated([hop("user-42", "app-agent", ["orders:read"])]), ("delegation", "depth"), None
    ),
    "delegation_empty_chain_agent": delegated([]),
    "delegation_missing_agent": changed(delegated([]), ("delegation",), None, remove=True),
    "delegation_5000_scopes": delegated(
        [hop("user-42", "app-planner", MANY), hop("app-planner", "app-agent", MANY[::-1])],
        requested_scopes=MANY,
    ),
    "delegation_unicode": delegated(
        [hop("utilisateur", "app-agent", ["订单:read"])], requested_scopes=["订单:read"]
    ),
    # resource and application
    "resource_billing_agent": with_fields(
        resource__identifier="resource://billing", subject__type="agent"
    ),
    "resource_billing_url_credential": with_fields(
        resource__identifier="resource://billing", application__credential_type="url"
    ),
    "resource_console_no_trait": with_fields(
        resource__identifier="resource://admin-console", application__traits=[]
    ),
    "resource_console_traits_wrong": with_fields(
        resource__identifier="resource://admin-console", application__traits="first_party"
    ),
    "resource_console_5000_traits": with_fields(
        resource__identifier="resource://admin-console", application__traits=MANY
    ),
    "resource_empty_id": with_fields(resource__id=""),
    "resource_no_scopes": with_fields(resource__scopes=[]),
}


#: Inputs on which the engines are known to answer differently (docs/policies.md, "Portability
#: to OPA"): ``name -> (template, input, what regorus answers, what OPA answers)``, each answer
#: a decision or ``"error"``. ``test_opa_conformance`` checks they still differ this way and
#: that OPA is never the more permissive engine.
KNOWN_DIFFERENCES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    # regorus cannot hand an integral number beyond 64 bits back to Python ("not an i64"):
    # the echoed rate fails, the PDP denies with policy_error.
    "rate_beyond_64_bits": (
        "baseline-rate-limits",
        with_fields(context__request_rate=1e300),
        "error",
        "deny",
    ),
    # regorus parses RFC 3339 leniently (lowercase "t"/"z", a space for "T", second 60);
    # OPA's Go parser refuses these timestamps (an evaluation error, or undefined in OPA's
    # default non-strict mode: the session then has no expiry, denied either way).
    "timestamp_lowercase": (
        "baseline-session-state",
        with_fields(session__expires_at="2026-03-16t12:00:00z"),
        "allow",
        "error",
    ),
    "timestamp_space": (
        "baseline-session-state",
        with_fields(context__time="2026-03-16 10:00:00Z"),
        "allow",
        "error",
    ),
}


def corpus() -> Iterator[tuple[str, Any]]:
    """``(name, input)`` for every case: the request, its variations, then ``CASES``."""
    yield "request", REQUEST
    yield "empty_object", {}
    yield from NOT_OBJECTS.items()
    for path in leaf_paths(REQUEST):
        name = ".".join(path)
        yield f"{name}:missing", changed(REQUEST, path, None, remove=True)
        yield f"{name}:null", changed(REQUEST, path, None)
        for kind, value in WRONG_TYPES.items():
            yield f"{name}:{kind}", changed(REQUEST, path, value)
    yield from CASES.items()
