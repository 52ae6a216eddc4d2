# name: Baseline: Delegation Constraints
# description: Guard rails for every delegated request: at most max_chain_length hops, a
#   declared depth that matches the chain, complete hops, no application twice in a chain,
#   each hop delegating only scopes it received, no non-delegable scopes, and a delegation
#   chain for every delegated session. Denies with every violation as a reason.
package caracal.authz

import rego.v1

# Input fields of the wrong type count as absent.
as_array(value) := value if is_array(value)
else := []

max_chain_length := 5

# Actions that can never be delegated ("admin" covers every "<resource>:admin" scope).
non_delegable_actions := {"admin"}

raw_chain := object.get(input, ["delegation", "chain"], [])

chain := as_array(raw_chain)

action(scope) := parts[count(parts) - 1] if {
	is_string(scope)
	parts := split(scope, ":")
}

non_empty_string(value) if {
	is_string(value)
	value != ""
}

delegated_session if input.session.type == "delegated"

delegated_session if non_empty_string(input.session.parent_id)

violations contains "delegation_chain_not_a_list" if not is_array(raw_chain)

violations contains "delegation_chain_too_long" if count(chain) > max_chain_length

violations contains "delegation_depth_mismatch" if {
	depth := input.delegation.depth
	depth != null
	depth != count(chain)
}

violations contains "delegation_hop_incomplete" if {
	some hop in chain
	not complete(hop)
}

complete(hop) if {
	non_empty_string(hop.subject_id)
	non_empty_string(hop.application_id)
	is_array(hop.scopes)
}

violations contains "delegation_cycle" if {
	apps := [hop.application_id | some hop in chain]
	count({app | some app in apps}) != count(apps)
}

# Each hop's scopes as a set, built once (a lookup in an array per scope would cost the
# product of the list lengths).
hop_scopes := [scope_set(hop) | some hop in chain]

scope_set(hop) := {scope | some scope in as_array(hop.scopes)} if is_object(hop)
else := set()

violations contains "delegation_scope_escalation" if {
	some i, scopes in hop_scopes
	i > 0
	some scope in scopes
	not scope in hop_scopes[i - 1]
}

violations contains "non_delegable_scope" if {
	some hop in chain
	some scope in as_array(hop.scopes)
	action(scope) in non_delegable_actions
}

violations contains "delegated_session_without_chain" if {
	delegated_session
	count(chain) == 0
}

default result := {"decision": "deny", "reasons": ["delegation_constraints_not_evaluated"]}

result := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["no_delegation"]} if {
	count(chain) == 0
} else := {"decision": "allow", "reasons": ["delegation_constraints_met"]}
