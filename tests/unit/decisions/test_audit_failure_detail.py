"""The 503 detail after a failed decision audit write tells the caller what to do."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.audit.decision_events import AuditWriteError, DecisionEvent
from controlplane.decisions.pipeline import audit_failure_detail


def event(request_id: str) -> DecisionEvent:
    return DecisionEvent(
        id="01a23c42-0000-7000-8000-000000000000",
        zone_id="z1",
        request_id=request_id,
        actor_id=None,
        decision="allow",
        evaluation_status="complete",
        metadata={},
        policy_set_id=None,
        policy_set_version_id=None,
        manifest_sha=None,
        determining_policies=[],
        diagnostics=[],
        shadow_decision=None,
        shadow_policy_set_version_id=None,
        occurred_at=datetime.now(UTC),
    )


def test_not_written_says_retry() -> None:
    detail = audit_failure_detail(AuditWriteError("refused"), [event("r1")])
    assert detail == "the decision was not recorded; retry"


def test_in_doubt_names_where_to_look_for_one_decision_and_for_a_batch() -> None:
    doubt = AuditWriteError("connection broke", in_doubt=True)
    one = audit_failure_detail(doubt, [event("r1")])
    assert one.startswith("the decision may have been recorded:")
    assert "GET /v1/zones/z1/audit/by-request/r1" in one
    many = audit_failure_detail(doubt, [event("item-1"), event("item-2")])
    assert "all or none" in many and "/audit/by-request/item-1" in many
