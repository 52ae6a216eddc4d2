package caracal.authz_test

import rego.v1

import data.caracal.authz

user_hop := {"subject_id": "user-1", "application_id": "app-planner", "scopes": ["docs:read", "docs:write"]}

agent_hop := {"subject_id": "app-planner", "application_id": "app-agent", "scopes": ["docs:read"]}

delegated(chain) := {
	"subject": {"id": "agent-1", "type": "agent"},
	"application": {"id": "app-agent"},
	"session": {"id": "s-2", "subject_id": "user-1", "type": "delegated", "parent_id": "s-1"},
	"delegation": {"chain": chain, "depth": count(chain)},
	"requested_scopes": ["docs:read"],
}

test_no_delegation_is_allowed if {
	r := authz.result with input as {"subject": {"id": "user-1", "type": "user"}, "session": {"id": "s-1", "type": "user"}}
	r.decision == "allow"
	r.reasons == ["no_delegation"]
}

test_valid_chain_is_allowed if {
	r := authz.result with input as delegated([user_hop, agent_hop])
	r.decision == "allow"
	r.reasons == ["delegation_constraints_met"]
}

test_escalating_hop_is_denied if {
	escalating := object.union(agent_hop, {"scopes": ["docs:read", "docs:delete"]})
	r := authz.result with input as delegated([user_hop, escalating])
	r.decision == "deny"
	r.reasons == ["delegation_scope_escalation"]
}

test_chain_too_long_is_denied if {
	hops := [object.union(agent_hop, {"application_id": sprintf("app-%d", [i])}) | some i in numbers.range(1, 6)]
	r := authz.result with input as delegated(hops)
	r.reasons == ["delegation_chain_too_long"]
}

test_cycle_is_denied if {
	back := {"subject_id": "app-agent", "application_id": "app-planner", "scopes": ["docs:read"]}
	r := authz.result with input as delegated([user_hop, agent_hop, back])
	r.reasons == ["delegation_cycle"]
}

test_depth_mismatch_is_denied if {
	inp := object.union(delegated([user_hop]), {"delegation": {"depth": 2}})
	r := authz.result with input as inp
	r.reasons == ["delegation_depth_mismatch"]
}

test_incomplete_hop_is_denied if {
	r := authz.result with input as delegated([{"subject_id": "user-1", "scopes": ["docs:read"]}])
	r.reasons == ["delegation_hop_incomplete"]
}

test_admin_scope_cannot_be_delegated if {
	hop := object.union(user_hop, {"scopes": ["docs:admin"]})
	r := authz.result with input as delegated([hop])
	r.reasons == ["non_delegable_scope"]
}

test_delegated_session_needs_a_chain if {
	r := authz.result with input as object.remove(delegated([]), ["delegation"])
	r.decision == "deny"
	r.reasons == ["delegated_session_without_chain"]
}

test_all_violations_are_reported if {
	again := {"subject_id": "app-planner", "application_id": "app-planner", "scopes": ["docs:admin"]}
	r := authz.result with input as delegated([user_hop, again])
	r.reasons == ["delegation_cycle", "delegation_scope_escalation", "non_delegable_scope"]
}
