package caracal.authz_test

import rego.v1

import data.caracal.authz

agent_request := {
	"subject": {"id": "agent-7", "type": "agent", "roles": [], "attributes": {}},
	"application": {"id": "app-agent", "name": "Assistant", "credential_type": "public-key", "traits": []},
	"resource": {"id": "res-1", "identifier": "resource://mail", "scopes": ["mail:read", "mail:send"]},
	"requested_scopes": ["mail:read"],
	"delegation": {
		"chain": [{"subject_id": "user-1", "application_id": "app-agent", "scopes": ["mail:read", "mail:send"]}],
		"depth": 1,
	},
}

with_chain(chain, scopes) := object.union(agent_request, {
	"delegation": {"chain": chain, "depth": count(chain)},
	"requested_scopes": scopes,
})

test_user_without_delegation_is_allowed if {
	r := authz.result with input as {"subject": {"id": "user-1", "type": "user"}, "requested_scopes": ["mail:read"]}
	r.decision == "allow"
	r.reasons == ["no_delegation"]
}

test_agent_without_delegation_is_denied if {
	r := authz.result with input as object.remove(agent_request, ["delegation"])
	r.decision == "deny"
	r.reasons == ["agent_requires_delegation"]
}

test_agent_with_null_delegation_is_denied if {
	r := authz.result with input as object.union(agent_request, {"delegation": null})
	r.decision == "deny"
}

test_delegated_scope_is_allowed if {
	r := authz.result with input as agent_request
	r.decision == "allow"
	r.reasons == ["delegation_covers_requested_scopes"]
}

test_undelegated_scope_is_partial if {
	chain := [{"subject_id": "user-1", "application_id": "app-agent", "scopes": ["mail:read"]}]
	r := authz.result with input as with_chain(chain, ["mail:read", "mail:send"])
	r.decision == "partial"
	r.granted_scopes == ["mail:read"]
}

test_every_hop_must_delegate_the_scope if {
	chain := [
		{"subject_id": "user-1", "application_id": "app-planner", "scopes": ["mail:read"]},
		{"subject_id": "app-planner", "application_id": "app-agent", "scopes": ["mail:read", "mail:send"]},
	]
	r := authz.result with input as with_chain(chain, ["mail:send"])
	r.decision == "deny"
	r.reasons == ["delegation_covers_no_requested_scope"]
}

test_chain_must_end_at_the_requesting_application if {
	chain := [{"subject_id": "user-1", "application_id": "app-other", "scopes": ["mail:read"]}]
	r := authz.result with input as with_chain(chain, ["mail:read"])
	r.decision == "deny"
	r.reasons == ["delegation_not_to_this_application"]
}

test_chain_longer_than_max_depth_is_denied if {
	hop := {"subject_id": "x", "application_id": "app-agent", "scopes": ["mail:read"]}
	r := authz.result with input as with_chain([hop, hop, hop, hop], ["mail:read"])
	r.decision == "deny"
	r.reasons == ["delegation_too_deep"]
}

test_no_scopes_requested_is_denied if {
	r := authz.result with input as object.union(agent_request, {"requested_scopes": []})
	r.reasons == ["no_scopes_requested"]
}

test_malformed_hop_is_denied if {
	r := authz.result with input as with_chain(["user-1"], ["mail:read"])
	r.decision == "deny"
	r.reasons == ["delegation_hop_invalid"]
}
