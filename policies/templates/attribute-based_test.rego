package caracal.authz_test

import rego.v1

import data.caracal.authz

base := {
	"subject": {
		"id": "user-1",
		"type": "user",
		"roles": [],
		"attributes": {"clearance": 2, "department": "sales", "status": "active"},
	},
	"resource": {"id": "res-1", "identifier": "resource://crm", "scopes": ["crm:read", "crm:write"]},
	"requested_scopes": ["crm:read", "crm:write"],
	"context": {"risk_score": 10},
}

with_attributes(attrs) := object.union(base, {"subject": object.union(base.subject, {"attributes": attrs})})

test_cleared_subject_reads_and_writes if {
	r := authz.result with input as base
	r.decision == "allow"
	r.reasons == ["attributes_permit_requested_scopes"]
}

test_low_clearance_gets_read_only if {
	r := authz.result with input as with_attributes({"clearance": 1, "department": "sales"})
	r.decision == "partial"
	r.granted_scopes == ["crm:read"]
}

test_admin_needs_department if {
	inp := object.union(
		with_attributes({"clearance": 5, "department": "sales"}),
		{"requested_scopes": ["crm:admin"]},
	)
	r := authz.result with input as inp
	r.decision == "deny"
	r.reasons == ["attributes_permit_no_requested_scope"]
}

test_admin_allowed_for_security_user if {
	inp := object.union(
		with_attributes({"clearance": 4, "department": "security"}),
		{"requested_scopes": ["crm:admin"]},
	)
	r := authz.result with input as inp
	r.decision == "allow"
}

test_admin_not_allowed_for_agents if {
	inp := object.union(
		with_attributes({"clearance": 4, "department": "security"}),
		{"requested_scopes": ["crm:admin"], "subject": {"type": "agent", "attributes": {"clearance": 4, "department": "security"}}},
	)
	r := authz.result with input as inp
	r.decision == "deny"
}

test_unlisted_action_uses_default_requirement if {
	r0 := authz.result with input as object.union(with_attributes({"clearance": 0}), {"requested_scopes": ["crm:export"]})
	r0.decision == "deny"
	r1 := authz.result with input as object.union(with_attributes({"clearance": 1}), {"requested_scopes": ["crm:export"]})
	r1.decision == "allow"
}

test_non_numeric_clearance_counts_as_zero if {
	r := authz.result with input as with_attributes({"clearance": "top"})
	r.decision == "partial"
	r.granted_scopes == ["crm:read"]
}

test_missing_attributes_count_as_zero_clearance if {
	r := authz.result with input as object.union(base, {"subject": {"attributes": null}})
	r.decision == "partial"
	r.granted_scopes == ["crm:read"]
}

test_suspended_subject_is_denied if {
	r := authz.result with input as with_attributes({"clearance": 5, "status": "suspended"})
	r.decision == "deny"
	r.reasons == ["subject_inactive"]
}

test_high_risk_is_denied if {
	r := authz.result with input as object.union(base, {"context": {"risk_score": 71}})
	r.decision == "deny"
	r.reasons == ["risk_score_too_high"]
}

test_non_numeric_risk_is_denied if {
	r := authz.result with input as object.union(base, {"context": {"risk_score": "high"}})
	r.reasons == ["risk_score_too_high"]
}

test_missing_risk_score_is_not_a_risk if {
	r := authz.result with input as object.remove(base, ["context"])
	r.decision == "allow"
}

test_no_scopes_requested_is_denied if {
	r := authz.result with input as object.union(base, {"requested_scopes": []})
	r.reasons == ["no_scopes_requested"]
}
