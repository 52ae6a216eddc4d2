"""The decision pipeline: load the zone's compiled sets → check the input's session
(``controlplane.decisions.sessions``: revoked/expired deny at once) → evaluate the active set
(and the shadow, observe-only) → open a step-up challenge if asked
(``controlplane.decisions.step_up``) → build (and sign) the response → audit.

``decide`` runs it with plain arguments (no HTTP framework): the HTTP route, and any other
caller, translate to and from it. ``decide_batch`` runs it for up to ``MAX_BATCH_INPUTS``
inputs against the same active set, checks every session in one transaction (an input error
in any leaves nothing recorded) and writes the audit events as one INSERT. Without a session
in the input only the audit write (group commit) touches the database on the hot path; with
one, the session check is one more round trip. The zone's sets are in process memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec

from controlplane.audit.decision_events import AuditWriteError, DecisionEvent
from controlplane.decisions.sessions import SessionGate, session_denial, session_gate, session_gates
from controlplane.decisions.step_up import apply_step_up
from controlplane.errors import Conflict, NotFound, Unavailable
from controlplane.ids import new_id
from controlplane.keys.crypto import sign_jws
from controlplane.keys.secret_fields import redact, scrub, secret_values
from controlplane.keys.zone_keys import current_signing_key
from controlplane.metrics.decisions import timed_evaluation
from controlplane.pdp.evaluate import CompiledSet, Decision, evaluate_set
from controlplane.pdp.runtime import ZoneState
from controlplane.services import Services

#: Larger inputs are recorded in the audit event by size and hash only.
MAX_AUDITED_INPUT_BYTES = 64 * 1024
#: Larger policy outputs (reasons, granted scopes, obligations) likewise.
MAX_AUDITED_FIELD_BYTES = 16 * 1024
#: Engine messages in the audit diagnostics are cut to this many characters.
MAX_DIAGNOSTIC_CHARS = 1000
#: The most inputs one batch request may carry.
MAX_BATCH_INPUTS = 100
_json = msgspec.json.Encoder()


class DeterminingPolicy(msgspec.Struct):
    """A policy whose own decision is the final one."""

    policy_id: str
    policy_version_id: str


class StepUpRef(msgspec.Struct):
    """The step-up challenge a partial decision asks the caller to satisfy."""

    id: str
    type: str


class DecisionResponse(msgspec.Struct):
    """200 body; ``jws`` only when ``sign`` was true."""

    decision: str
    reasons: list[str]
    granted_scopes: list[str]
    obligations: dict[str, Any]
    step_up: StepUpRef | None
    policy_set_version_id: str
    determining_policies: list[DeterminingPolicy]
    request_id: str | None
    jws: str | msgspec.UnsetType = msgspec.UNSET


@dataclass(slots=True)
class DecisionContext:
    """Everything one decision request carries through the pipeline."""

    zone_id: str
    input: dict[str, Any]
    actor_id: str | None
    request_id: str | None
    occurred_at: datetime
    sign: bool = False
    #: the step-up challenge opened for this decision, if any
    step_up: StepUpRef | None = None
    #: extra audit metadata stages may add
    audit_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The active set's decision and, when a shadow ran, the shadow's."""

    compiled: CompiledSet
    decision: Decision
    shadow_compiled: CompiledSet | None = None
    shadow: Decision | None = None


# -- pipeline stages ----------------------------------------------------------------------------


async def load_zone_set(services: Services, zone_id: str) -> ZoneState:
    """The zone's installed state; NotFound zone_not_found, Conflict no_active_policy_set."""
    runtime = services.runtime
    state = runtime.cached(zone_id)
    if state is None and "\x00" not in zone_id:
        state = await runtime.zone(zone_id)
    if state is None:
        raise NotFound("zone_not_found")
    if state.active is None:
        raise Conflict("no_active_policy_set", "activate a policy-set version first")
    return state


def evaluate(state: ZoneState, input: dict[str, Any]) -> Outcome:
    """Evaluate the active set, and the shadow set (observe-only) when there is one."""
    assert state.active is not None
    decision = evaluate_set(state.active, input)
    if state.shadow is None:
        return Outcome(state.active, decision)
    return Outcome(state.active, decision, state.shadow, evaluate_set(state.shadow, input))


def evaluation_status(decision: Decision) -> str:
    """``complete``, or ``error`` when some policy failed (and denied)."""
    return "error" if decision.diagnostics else "complete"


async def open_step_up(
    services: Services, ctx: DecisionContext, outcome: Outcome, session_id: str | None
) -> Outcome:
    """Open the step-up challenge the decision asks for (``controlplane.decisions.step_up``)."""
    if outcome.decision.step_up is None:
        return outcome  # the common case: nothing to open, nothing to copy
    decision, challenge = await apply_step_up(
        services.db, ctx.zone_id, session_id, outcome.decision, ctx.request_id
    )
    if challenge is not None:
        ctx.step_up = StepUpRef(id=challenge[0], type=challenge[1])
        ctx.audit_metadata["step_up_challenge_id"] = challenge[0]
    return replace(outcome, decision=decision)


def omitted(encoded: bytes, reason: str | None = None) -> dict[str, Any]:
    """What the audit records instead of a value it leaves out: ``{"omitted_bytes",
    "sha256"}`` of the value's JSON ``encoded``, and ``omitted_reason`` when given."""
    summary: dict[str, Any] = {
        "omitted_bytes": len(encoded),
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }
    if reason is not None:
        summary["omitted_reason"] = reason
    return summary


def audited(value: Any) -> Any:
    """``value`` for the audit metadata, or, when its JSON is over
    ``MAX_AUDITED_FIELD_BYTES``, ``omitted(…)`` (``{"omitted_bytes", "sha256"}``) instead:
    policy results can copy the input (``granted_scopes`` is the requested scopes), and an
    audit row must not grow with it."""
    if not value:
        return value
    encoded = _json.encode(value)
    return value if len(encoded) <= MAX_AUDITED_FIELD_BYTES else omitted(encoded)


def audited_input(input: dict[str, Any]) -> dict[str, Any]:
    """``{"input": …}`` for the audit metadata, or, for an input over
    ``MAX_AUDITED_INPUT_BYTES`` of JSON, its size and SHA-256 instead (``input_bytes``,
    ``input_sha256``)."""
    encoded = _json.encode(input)
    if len(encoded) <= MAX_AUDITED_INPUT_BYTES:
        return {"input": input}
    summary = omitted(encoded)
    return {"input_bytes": summary["omitted_bytes"], "input_sha256": summary["sha256"]}


def scrubbed_diagnostics(
    diagnostics: list[dict[str, str]], secrets: set[str]
) -> list[dict[str, str]]:
    """``diagnostics`` without the input's ``secrets`` (engine messages may quote a value,
    ``Got `"sk_live_…"` instead``, that the key-based redaction of the input hides), each
    message cut to ``MAX_DIAGNOSTIC_CHARS``."""
    return [
        {**d, "error": scrub(d.get("error", ""), secrets)[:MAX_DIAGNOSTIC_CHARS]}
        for d in diagnostics
    ]


def decision_event(ctx: DecisionContext, outcome: Outcome) -> DecisionEvent:
    """The decision's audit event (``event_type`` ``decision``)."""
    decision, shadow = outcome.decision, outcome.shadow
    # The input's secret values, looked for only when some engine message could quote them.
    errored = decision.diagnostics or (shadow is not None and shadow.diagnostics)
    secrets = secret_values(ctx.input) if errored else set()
    return DecisionEvent(
        id=new_id(),
        zone_id=ctx.zone_id,
        request_id=ctx.request_id,
        actor_id=ctx.actor_id,
        decision=decision.decision,
        evaluation_status=evaluation_status(decision),
        metadata=decision_metadata(ctx, outcome, secrets),
        policy_set_id=outcome.compiled.policy_set_id,
        policy_set_version_id=outcome.compiled.policy_set_version_id,
        manifest_sha=outcome.compiled.manifest_sha256,
        determining_policies=decision.determining_policies,
        diagnostics=scrubbed_diagnostics(decision.diagnostics, secrets),
        shadow_decision=shadow.decision if shadow is not None else None,
        shadow_policy_set_version_id=(
            outcome.shadow_compiled.policy_set_version_id if outcome.shadow_compiled else None
        ),
        occurred_at=ctx.occurred_at,
    )


def decision_metadata(
    ctx: DecisionContext, outcome: Outcome, secrets: set[str]
) -> dict[str, Any] | msgspec.Raw:
    """The event's ``metadata_json``, redacted: the input and the policies' outputs, each
    bounded in size (``audited``, ``audited_input``).

    The usual metadata is small: encoded once, whole, it is under every field's bound, so
    it is kept as that JSON (the audit writer sends it as it is) and no field is measured
    on its own."""
    metadata = redact(_metadata_fields(ctx, outcome, secrets, bounded=False))
    encoded = _json.encode(metadata)
    if len(encoded) <= MAX_AUDITED_FIELD_BYTES:
        return msgspec.Raw(encoded)
    return redact(_metadata_fields(ctx, outcome, secrets, bounded=True))


def _metadata_fields(
    ctx: DecisionContext, outcome: Outcome, secrets: set[str], *, bounded: bool
) -> dict[str, Any]:
    """The metadata's fields, each through ``audited``/``audited_input`` when ``bounded``."""
    decision, shadow = outcome.decision, outcome.shadow
    field = audited if bounded else _as_is
    metadata: dict[str, Any] = {
        "actor": ctx.actor_id,
        "reasons": field(decision.reasons),
        "granted_scopes": field(decision.granted_scopes),
        "obligations": field(decision.obligations),
        "step_up": decision.step_up,
        **(audited_input(ctx.input) if bounded else {"input": ctx.input}),
        **ctx.audit_metadata,
    }
    if shadow is not None:
        metadata["shadow"] = {
            "reasons": field(shadow.reasons),
            "granted_scopes": field(shadow.granted_scopes),
            "determining_policies": shadow.determining_policies,
            "diagnostics": scrubbed_diagnostics(shadow.diagnostics, secrets),
        }
    return metadata


def _as_is(value: Any) -> Any:
    return value


async def record_events(services: Services, events: list[DecisionEvent]) -> None:
    """Write decision audit events, all in one statement (group commit); Unavailable if they
    cannot be made durable."""
    try:
        await services.audit_writer.write_all(events)
    except AuditWriteError as exc:
        raise Unavailable("audit_unavailable", audit_failure_detail(exc, events)) from None


def audit_failure_detail(exc: AuditWriteError, events: list[DecisionEvent]) -> str:
    """What a client should do after the 503 (docs/outages.md, "Decisions in doubt"); for a
    batch (written all or none) the first item's request id tells."""
    if not exc.in_doubt:
        return "the decision was not recorded; retry"
    first = events[0]
    lookup = f"GET /v1/zones/{first.zone_id}/audit/by-request/{first.request_id} tells"
    if len(events) == 1:
        return f"the decision may have been recorded: {lookup}; retry if it is not there"
    return (
        f"the decisions may have been recorded (all or none): {lookup} (the first item's"
        " request id); retry if it is not there"
    )


SigningKey = tuple[str, bytes]


async def signing_key(services: Services, zone_id: str) -> SigningKey:
    """The zone's current ``(kid, private key)``."""
    async with services.db.transaction() as conn:
        return await current_signing_key(conn, services.kek, zone_id)


def response_of(ctx: DecisionContext, outcome: Outcome) -> DecisionResponse:
    """The response body, unsigned."""
    decision = outcome.decision
    return DecisionResponse(
        decision=decision.decision,
        reasons=decision.reasons,
        granted_scopes=decision.granted_scopes,
        obligations=decision.obligations,
        step_up=ctx.step_up,
        policy_set_version_id=outcome.compiled.policy_set_version_id,
        determining_policies=[DeterminingPolicy(**p) for p in decision.determining_policies],
        request_id=ctx.request_id,
    )


async def sign_response(
    services: Services, ctx: DecisionContext, response: DecisionResponse, key: SigningKey | None
) -> None:
    """Set ``response.jws``: signed with the zone's key (``key`` when already read)."""
    kid, private_key = key or await signing_key(services, ctx.zone_id)
    # The payload is the decision object (the contract); the protected header binds it to
    # its zone and its time, for verifiers that check them.
    bound = {"zone_id": ctx.zone_id, "iat": int(ctx.occurred_at.timestamp())}
    response.jws = sign_jws(private_key, kid, msgspec.to_builtins(response), bound)


async def _decided(
    services: Services,
    state: ZoneState,
    ctx: DecisionContext,
    gate: SessionGate,
    key: SigningKey | None = None,
) -> tuple[DecisionResponse, Outcome]:
    """Evaluate (unless the session denies), open a step-up if asked, build the answer."""
    ctx.input = gate.input
    if gate.deny_reason is not None:  # revoked or expired: no policy runs
        assert state.active is not None
        outcome = Outcome(state.active, session_denial(gate.deny_reason))
    else:
        outcome = timed_evaluation(evaluate, state, ctx.input)
        outcome = await open_step_up(services, ctx, outcome, gate.session_id)
    response = response_of(ctx, outcome)
    if ctx.sign:
        await sign_response(services, ctx, response, key)
    return response, outcome


async def decide(
    services: Services,
    zone_id: str,
    input: dict[str, Any],
    *,
    request_id: str | None,
    actor_id: str | None,
    sign: bool = False,
) -> DecisionResponse:
    """One decision for ``input`` in the zone, recorded in the audit log; raises NotFound
    (zone_not_found), Conflict (no_active_policy_set), Invalid (a malformed
    ``input.session``) or Unavailable (audit_unavailable)."""
    ctx = DecisionContext(
        zone_id=zone_id,
        input=input,
        actor_id=actor_id,
        request_id=request_id,
        occurred_at=datetime.now(UTC),
        sign=sign,
    )
    state = await load_zone_set(services, zone_id)
    gate = await session_gate(services.db, zone_id, ctx.input)
    # The response (and its signature) first: a decision that cannot be answered is not
    # recorded as one that was.
    response, outcome = await _decided(services, state, ctx, gate)
    await record_events(services, [decision_event(ctx, outcome)])
    return response


async def decide_batch(
    services: Services,
    zone_id: str,
    inputs: list[dict[str, Any]],
    *,
    request_id: str | None,
    actor_id: str | None,
    sign: bool = False,
) -> list[DecisionResponse]:
    """One decision per input, in order, each as ``decide`` makes it (its own request id,
    ``batch_request_id`` = ``request_id`` in its audit metadata), against the active set
    loaded at the start. Every session is checked in one transaction first: an ``Invalid``
    session in any input (its issue path under ``inputs[i]``) leaves nothing recorded. The
    audit events are written together (one INSERT: all or none) before the answer."""
    state = await load_zone_set(services, zone_id)
    gates = await session_gates(services.db, zone_id, inputs)
    key = await signing_key(services, zone_id) if sign else None
    now = datetime.now(UTC)
    answers: list[DecisionResponse] = []
    events: list[DecisionEvent] = []
    for item, gate in zip(inputs, gates, strict=True):
        ctx = DecisionContext(
            zone_id=zone_id,
            input=item,
            actor_id=actor_id,
            request_id=new_id(),
            occurred_at=now,
            sign=sign,
            audit_metadata={"batch_request_id": request_id},
        )
        response, outcome = await _decided(services, state, ctx, gate, key)
        answers.append(response)
        events.append(decision_event(ctx, outcome))
    await record_events(services, events)
    return answers
