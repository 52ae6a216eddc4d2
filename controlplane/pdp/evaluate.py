"""Evaluation of a compiled policy-set version and combination of the policies' results.

Each policy version is compiled once into a regorus engine (which checks it parses and
declares the package). A regorus ``Engine`` is *unsendable*: touching it (even ``clone()``)
from a thread other than the one that created it panics, so engines are parsed lazily per
thread (``threading.local``).

A ``CompiledSet`` evaluates its policies in ONE engine per thread: each policy's
``package caracal.authz`` line is rewritten to a package of its own (``caracal.p<i>``, same
line, so engine messages keep their ``file:line:col``), the input is converted once per
decision (``set_input``, about a quarter of a simple policy's cost) and each policy is one
``eval_rule`` of its own ``result``, so errors and undefined results stay per policy. A
policy whose text mentions ``data`` at all (it could name ``data.caracal.authz`` or see the
other policies) keeps an engine of its own, as does a repeated policy version.

Inputs must come from a JSON decoder that bounds nesting (msgspec stops at 1000 levels):
regorus converts them recursively and overflows the thread's stack (SIGSEGV) near 10 000.

Combination (DESIGN.md, PDP):

* each policy's ``result`` is normalised to allow / deny / partial; a policy that errors,
  leaves ``result`` undefined or returns a malformed value denies with reason
  ``policy_error`` and a ``diagnostics`` entry;
* a policy that asks for ``step_up`` and does not deny counts as ``partial``;
* deny overrides; otherwise any partial gives partial; otherwise allow; an empty set denies
  (reason ``no_policies``);
* ``granted_scopes``: allow grants ``input.requested_scopes``; partial grants the
  intersection of the ``granted_scopes`` of the policies that answered ``partial`` explicitly
  (in the first such policy's order); a partial caused only by ``step_up`` grants nothing;
* ``reasons`` (ordered, deduplicated) and ``obligations`` (shallow merge, the first policy in
  manifest order wins a key conflict) come from the determining policies, those whose own
  decision equals the final one;
* ``step_up``: the request with the shortest ``ttl`` among the non-denying policies (the
  first in manifest order on a tie); it is only reported when the final decision is partial.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import regorus

from controlplane.pdp.contract import (
    PACKAGE,
    RESULT_RULE,
    RegoContractError,
    clean_engine_message,
    new_engine,
)

__all__ = [
    "CompiledPolicy",
    "CompiledSet",
    "Decision",
    "DecisionValue",
    "PolicyOutcome",
    "compile_policy",
    "compile_set",
    "evaluate_set",
    "interpret_result",
]

DecisionValue = Literal["allow", "deny", "partial"]
_DECISIONS: dict[str, DecisionValue] = {"allow": "allow", "deny": "deny", "partial": "partial"}
POLICY_ERROR_REASON = "policy_error"
NO_POLICIES_REASON = "no_policies"


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The combined decision of a policy set for one input."""

    decision: DecisionValue
    reasons: list[str]
    granted_scopes: list[str]
    obligations: dict[str, Any]
    #: ``{"type": str, "ttl": int}`` when policies ask for a step-up challenge, else ``None``.
    step_up: dict[str, Any] | None
    #: ``[{"policy_id", "policy_version_id"}]`` of the policies whose decision is the final one.
    determining_policies: list[dict[str, str]]
    #: ``[{"policy_id", "policy_version_id", "error"}]`` for every policy that failed.
    diagnostics: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One policy version, parsed once per thread that evaluates it."""

    policy_id: str
    policy_version_id: str
    content: str = field(repr=False)
    source_name: str
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @property
    def engine(self) -> regorus.Engine:
        """This thread's engine for the policy (parsed on the thread's first use)."""
        try:
            return self._local.engine
        except AttributeError:
            engine = self._local.engine = new_engine(self.source_name, self.content)
            return engine


_PACKAGE_LINE = re.compile(r"^package[ \t]+caracal\.authz[ \t]*(?=#|$)", re.MULTILINE)
_DATA = re.compile(r"\bdata\b")


@dataclass(frozen=True, slots=True)
class _Plan:
    """How a set evaluates each policy: rule paths in the shared engine, or ``None``."""

    #: ``(source_name, rewritten content)`` of the modules of the shared engine.
    modules: tuple[tuple[str, str], ...]
    #: per policy, in manifest order: its ``result`` path in the shared engine, or ``None``
    #: when it is evaluated in an engine of its own.
    rules: tuple[str | None, ...]


def _plan(policies: tuple[CompiledPolicy, ...]) -> _Plan:
    modules: list[tuple[str, str]] = []
    rules: list[str | None] = []
    names: set[str] = set()
    for policy in policies:
        content = policy.content
        package = f"caracal.p{len(modules)}"
        if (
            policy.source_name in names
            or _DATA.search(content) is not None
            or len(_PACKAGE_LINE.findall(content)) != 1
        ):
            rules.append(None)
            continue
        names.add(policy.source_name)
        modules.append((policy.source_name, _PACKAGE_LINE.sub(f"package {package}", content)))
        rules.append(f"data.{package}.result")
    return _Plan(tuple(modules), tuple(rules))


@dataclass(frozen=True, slots=True)
class CompiledSet:
    """A compiled policy-set version: its policies in manifest order."""

    policy_set_id: str
    policy_set_version_id: str
    manifest_sha256: str
    policies: tuple[CompiledPolicy, ...]
    _plan: _Plan = field(init=False, repr=False, compare=False)
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plan", _plan(self.policies))

    @property
    def engine(self) -> regorus.Engine | None:
        """This thread's engine shared by the set's policies (``None`` if none shares)."""
        try:
            return self._local.engine
        except AttributeError:
            engine = None
            if self._plan.modules:
                try:
                    engine = new_engine(*self._plan.modules[0])
                    for name, content in self._plan.modules[1:]:
                        engine.add_policy(name, content)
                except (RegoContractError, RuntimeError):
                    engine = None  # cannot happen for compiled policies; evaluate them alone
            self._local.engine = engine
            return engine


def compile_policy(policy_id: str, policy_version_id: str, content: str) -> CompiledPolicy:
    """Parse ``content`` into an engine; raise ``RegoContractError`` if it does not parse or
    does not declare ``package caracal.authz`` (the full contract is checked on upload)."""
    name = f"{policy_version_id}.rego"
    engine = new_engine(name, content)
    packages = set(engine.get_packages())
    if packages != {f"data.{PACKAGE}"}:
        found = ", ".join(sorted(p.removeprefix("data.") for p in packages)) or "none"
        raise RegoContractError(f"{name}: package must be {PACKAGE}, found {found}")
    compiled = CompiledPolicy(policy_id, policy_version_id, content, name)
    compiled._local.engine = engine
    return compiled


def compile_set(
    policy_set_id: str,
    policy_set_version_id: str,
    manifest_sha256: str,
    policies: Iterable[tuple[str, str, str] | CompiledPolicy],
) -> CompiledSet:
    """Build a ``CompiledSet`` from ``(policy_id, policy_version_id, content)`` triples or
    already compiled policies (e.g. from a cache keyed by version id), in manifest order."""
    compiled = tuple(p if isinstance(p, CompiledPolicy) else compile_policy(*p) for p in policies)
    return CompiledSet(policy_set_id, policy_set_version_id, manifest_sha256, compiled)


class PolicyOutcome(msgspec.Struct, frozen=True):
    """One policy's normalised result."""

    decision: DecisionValue
    reasons: tuple[str, ...] = ()
    granted_scopes: tuple[str, ...] | None = None
    obligations: Mapping[str, Any] | None = None
    step_up: dict[str, Any] | None = None


_UNDEFINED = "result is undefined"


def interpret_result(value: Any) -> PolicyOutcome | str:
    """Normalise a ``result`` value; return an error string if it breaks the contract."""
    if value is None:
        return _UNDEFINED
    if value is True:
        return _ALLOW
    if value is False:
        return _DENY
    if not isinstance(value, dict):
        return f"result has invalid shape: expected a boolean or an object, got {_kind(value)}"
    if value.keys() <= _FAST_KEYS:
        fast = _usual_outcome(value)
        if fast is not None:
            return fast
    raw_decision = value.get("decision")
    allow = value.get("allow")
    if allow is not None and not isinstance(allow, bool):
        return f"result has invalid shape: allow must be a boolean, got {_kind(allow)}"
    decision: DecisionValue | None
    if raw_decision is None:
        if allow is None:
            return 'result has invalid shape: object needs "allow" (boolean) or "decision"'
        decision = "allow" if allow else "deny"
    else:  # a list or an object is no decision either (and cannot be looked up)
        decision = _DECISIONS.get(raw_decision) if isinstance(raw_decision, str) else None
    if decision is None:
        return (
            'result has invalid shape: decision must be "allow", "deny" or "partial", '
            f"got {raw_decision!r}"
        )
    reasons = _strings(value.get("reasons"), "reasons")
    if isinstance(reasons, str):
        return reasons
    granted = _strings(value.get("granted_scopes"), "granted_scopes")
    if isinstance(granted, str):
        return granted
    obligations = value.get("obligations")
    if obligations is not None and not isinstance(obligations, dict):
        return f"result has invalid shape: obligations must be an object, got {_kind(obligations)}"
    step_up = _step_up(value.get("step_up"))
    if isinstance(step_up, str):
        return step_up
    return PolicyOutcome(decision, reasons or (), granted, obligations or None, step_up)


_ALLOW = PolicyOutcome("allow")
_DENY = PolicyOutcome("deny")
_FAST_KEYS = frozenset(("decision", "reasons", "granted_scopes", "obligations"))


def _usual_outcome(value: dict[str, Any]) -> PolicyOutcome | None:
    """The outcome of a well-formed ``{"decision", "reasons"?, "granted_scopes"?,
    "obligations"?}`` object with lists of strings, else ``None`` (full checks follow)."""
    raw_decision = value.get("decision")
    if raw_decision.__class__ is not str:
        return None
    decision = _DECISIONS.get(raw_decision)
    if decision is None:
        return None
    reasons = value.get("reasons")
    if reasons is not None:
        if reasons.__class__ is not list:
            return None
        for reason in reasons:
            if reason.__class__ is not str:
                return None
    granted = value.get("granted_scopes")
    if granted is not None:
        if granted.__class__ is not list:
            return None
        for scope in granted:
            if scope.__class__ is not str:
                return None
        granted = tuple(granted)
    obligations = value.get("obligations")
    if obligations is not None and obligations.__class__ is not dict:
        return None
    return PolicyOutcome(decision, tuple(reasons) if reasons else (), granted, obligations or None)


def _strings(value: Any, name: str) -> tuple[str, ...] | str | None:
    if value is None:
        return None
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return f"result has invalid shape: {name} must be a list of strings"
    return tuple(value)


#: Longest step-up challenge type (the ``challenge_type`` column's limit).
MAX_STEP_UP_TYPE = 64


def _step_up(value: Any) -> dict[str, Any] | str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"result has invalid shape: step_up must be an object, got {_kind(value)}"
    kind, ttl = value.get("type"), value.get("ttl")
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_STEP_UP_TYPE or "\x00" in kind:
        return (
            "result has invalid shape: step_up.type must be a string of 1 to"
            f" {MAX_STEP_UP_TYPE} characters without NUL"
        )
    if isinstance(ttl, float) and ttl.is_integer():
        ttl = int(ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        return "result has invalid shape: step_up.ttl must be a positive integer (seconds)"
    return {"type": kind, "ttl": ttl}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, set | frozenset):
        return "set"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _evaluate_one(policy: CompiledPolicy, input: Mapping[str, Any]) -> PolicyOutcome | str:
    """The outcome of a policy that has an engine of its own."""
    return _evaluate_alone(policy.engine, RESULT_RULE, input)


def _evaluate_shared(
    engine: regorus.Engine, rules: tuple[str | None, ...], input: Mapping[str, Any]
) -> list[PolicyOutcome | str | None]:
    """Outcomes of the policies that share ``engine`` (``None`` for the others)."""
    try:
        engine.set_input(input)
    except (TypeError, ValueError, OverflowError) as exc:  # input values Rego cannot hold
        error = f"invalid input: {exc}"
        return [None if rule is None else error for rule in rules]
    except RuntimeError as exc:
        error = clean_engine_message(str(exc))[0]
        return [None if rule is None else error for rule in rules]
    outcomes: list[PolicyOutcome | str | None] = []
    try:
        for rule in rules:
            if rule is None:
                outcomes.append(None)
                continue
            try:
                value = engine.eval_rule(rule)
            except RuntimeError as exc:
                outcomes.append(clean_engine_message(str(exc))[0])
            except (TypeError, ValueError, OverflowError) as exc:
                outcomes.append(f"invalid input: {exc}")
            else:
                outcomes.append(interpret_result(value))
    finally:
        engine.take_prints()  # print() output is gathered, never written to stderr; drop it
    return outcomes


def _evaluate_alone(
    engine: regorus.Engine, rule: str, input: Mapping[str, Any]
) -> PolicyOutcome | str:
    """The outcome of the one policy of a set in its shared engine (``_evaluate_shared``
    for a single rule, without the per-rule bookkeeping)."""
    try:
        engine.set_input(input)
        value = engine.eval_rule(rule)
    except RuntimeError as exc:
        return clean_engine_message(str(exc))[0]
    except (TypeError, ValueError, OverflowError) as exc:  # input values Rego cannot hold
        return f"invalid input: {exc}"
    finally:
        engine.take_prints()  # print() output is gathered, never written to stderr; drop it
    return interpret_result(value)


def evaluate_set(compiled: CompiledSet, input: Mapping[str, Any]) -> Decision:
    """Evaluate every policy of ``compiled`` against ``input`` and combine the results."""
    policies = compiled.policies
    if len(policies) == 1:
        rule = compiled._plan.rules[0]
        engine = compiled.engine
        if rule is not None and engine is not None:
            return _decide_alone(policies[0], _evaluate_alone(engine, rule, input), input)
    outcomes: list[tuple[CompiledPolicy, PolicyOutcome]] = []
    diagnostics: list[dict[str, str]] = []
    engine = compiled.engine
    rules = compiled._plan.rules
    shared = _evaluate_shared(engine, rules, input) if engine is not None else None
    for index, policy in enumerate(compiled.policies):
        outcome = shared[index] if shared is not None else None
        if outcome is None:
            outcome = _evaluate_one(policy, input)
        if isinstance(outcome, str):
            diagnostics.append(
                {
                    "policy_id": policy.policy_id,
                    "policy_version_id": policy.policy_version_id,
                    "error": outcome,
                }
            )
            outcome = PolicyOutcome("deny", (POLICY_ERROR_REASON,))
        outcomes.append((policy, outcome))
    return _combine(outcomes, diagnostics, input)


def _combine(
    outcomes: list[tuple[CompiledPolicy, PolicyOutcome]],
    diagnostics: list[dict[str, str]],
    input: Mapping[str, Any],
) -> Decision:
    if not outcomes:
        return Decision(
            decision="deny",
            reasons=[NO_POLICIES_REASON],
            granted_scopes=[],
            obligations={},
            step_up=None,
            determining_policies=[],
            diagnostics=diagnostics,
        )
    effective = [
        "partial" if o.step_up is not None and o.decision != "deny" else o.decision
        for _, o in outcomes
    ]
    final: DecisionValue = (
        "deny" if "deny" in effective else "partial" if "partial" in effective else "allow"
    )
    if len(outcomes) == 1:
        determining = outcomes
        reasons = _unique(outcomes[0][1].reasons)
    else:
        determining = [po for po, e in zip(outcomes, effective, strict=True) if e == final]
        reasons = list(dict.fromkeys(r for _, o in determining for r in o.reasons))
    obligations: dict[str, Any] = {}
    for _, outcome in determining:
        if outcome.obligations:
            for key, val in outcome.obligations.items():
                obligations.setdefault(key, val)
    step_up = None
    granted: list[str] = []
    if final == "allow":
        granted = _requested_scopes(input)
    elif final == "partial":
        step_up = _shortest_step_up(o for _, o in determining)
        granted = _intersect(
            o.granted_scopes or () for _, o in determining if o.decision == "partial"
        )
    return Decision(
        decision=final,
        reasons=reasons,
        granted_scopes=granted,
        obligations=obligations,
        step_up=step_up,
        determining_policies=[
            {"policy_id": p.policy_id, "policy_version_id": p.policy_version_id}
            for p, _ in determining
        ],
        diagnostics=diagnostics,
    )


def _decide_alone(
    policy: CompiledPolicy, outcome: PolicyOutcome | str, input: Mapping[str, Any]
) -> Decision:
    """``_combine`` for a set of one policy: its decision is the final one."""
    diagnostics: list[dict[str, str]] = []
    if isinstance(outcome, str):
        diagnostics.append(
            {
                "policy_id": policy.policy_id,
                "policy_version_id": policy.policy_version_id,
                "error": outcome,
            }
        )
        outcome = _POLICY_ERROR
    final = outcome.decision
    step_up = None
    granted: list[str] = []
    if outcome.step_up is not None and final != "deny":
        final = "partial"
    if final == "allow":
        granted = _requested_scopes(input)
    elif final == "partial":
        step_up = dict(outcome.step_up) if outcome.step_up is not None else None
        if outcome.decision == "partial" and outcome.granted_scopes:
            granted = _unique(outcome.granted_scopes)
    return Decision(
        decision=final,
        reasons=_unique(outcome.reasons),
        granted_scopes=granted,
        obligations=dict(outcome.obligations) if outcome.obligations else {},
        step_up=step_up,
        determining_policies=[
            {"policy_id": policy.policy_id, "policy_version_id": policy.policy_version_id}
        ],
        diagnostics=diagnostics,
    )


_POLICY_ERROR = PolicyOutcome("deny", (POLICY_ERROR_REASON,))


def _shortest_step_up(outcomes: Iterable[PolicyOutcome]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for outcome in outcomes:
        if outcome.step_up is not None and (best is None or outcome.step_up["ttl"] < best["ttl"]):
            best = outcome.step_up
    return dict(best) if best is not None else None


def _intersect(lists: Iterable[tuple[str, ...]]) -> list[str]:
    result: list[str] | None = None
    for scopes in lists:
        if result is None:
            result = _unique(scopes)
        else:
            keep = set(scopes)
            result = [s for s in result if s in keep]
    return result or []


def _unique(items: Sequence[str]) -> list[str]:
    """``items`` in order, without repeats."""
    return list(items) if len(items) < 2 else list(dict.fromkeys(items))


def _requested_scopes(input: Mapping[str, Any]) -> list[str]:
    requested = input.get("requested_scopes")
    if requested.__class__ is list:  # the usual case, a list of str: no generator
        for scope in requested:
            if scope.__class__ is not str:
                break
        else:
            return list(dict.fromkeys(requested))
    if not isinstance(requested, list | tuple):
        return []
    return list(dict.fromkeys(s for s in requested if isinstance(s, str)))
