package caracal.authz_test

import rego.v1

import data.caracal.authz

request(scopes, satisfied, risk) := {
	"subject": {"id": "user-1", "type": "user"},
	"requested_scopes": scopes,
	"session": {"id": "s-1", "subject_id": "user-1", "step_up_satisfied": satisfied},
	"context": {"risk_score": risk},
}

test_ordinary_scopes_need_no_step_up if {
	r := authz.result with input as request(["orders:read", "orders:write"], false, 10)
	r.decision == "allow"
	r.reasons == ["no_step_up_required"]
	not r.step_up
}

test_sensitive_action_asks_for_mfa if {
	r := authz.result with input as request(["orders:read", "orders:delete"], false, 10)
	r.decision == "partial"
	r.step_up == {"type": "mfa", "ttl": 300}
	r.granted_scopes == ["orders:read"]
	r.reasons == ["sensitive_scope_requires_step_up"]
}

test_listed_sensitive_scope_asks_for_mfa if {
	r := authz.result with input as request(["payments:write"], false, 0)
	r.step_up.type == "mfa"
	r.granted_scopes == []
}

test_satisfied_step_up_allows_sensitive_scope if {
	r := authz.result with input as request(["orders:delete"], true, 10)
	r.decision == "allow"
	r.reasons == ["step_up_satisfied"]
}

test_truthy_but_not_true_is_not_satisfied if {
	r := authz.result with input as request(["orders:delete"], "yes", 10)
	r.decision == "partial"
}

test_elevated_risk_asks_for_mfa_for_everything if {
	r := authz.result with input as request(["orders:read"], false, 60)
	r.decision == "partial"
	r.granted_scopes == []
	r.reasons == ["elevated_risk_requires_step_up"]
}

test_missing_session_and_context_on_sensitive_scope if {
	r := authz.result with input as {"requested_scopes": ["admin"]}
	r.decision == "partial"
	r.step_up.ttl == 300
}
