# name: Baseline: Delegation Constraints
# description: Guard rails for every delegated request: at most max_chain_length hops, a
#   declared depth that matches the chain, complete hops, no application twice in a chain,
#   each hop delegating only scopes it received, no non-delegable scopes, and a delegation
#   chain for every delegated session. Denies with every violation as a reason.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# The longest delegation chain accepted.
max_chain_length := 5

# Actions that can never be delegated ("admin" covers every "<resource>:admin" scope).
non_delegable_actions := {"admin"}

# ---- Input --------------------------------------------------------------------------
# Each hop of input.delegation.chain is {subject_id (who delegates), application_id (who
# receives), scopes (delegated)}, ordered from the originating user to the requesting
# application.

chain := value if {
	value := input.delegation.chain
	is_array(value)
} else := []

# A delegated session: typed so, or with a parent session.
delegated_session if input.session.type == "delegated"

delegated_session if non_empty_string(input.session.parent_id)

# ---- Policy -------------------------------------------------------------------------

non_empty_string(value) if {
	is_string(value)
	value != ""
}

complete(hop) if {
	non_empty_string(hop.subject_id)
	non_empty_string(hop.application_id)
	is_array(hop.scopes)
}

# The scopes a hop delegated, as a set (so each lookup is one step, whatever the lengths).
delegated_by(hop) := {scope | some scope in hop.scopes} if is_array(hop.scopes)
else := set()

hop_scopes := [delegated_by(hop) | some hop in chain]

# Violations of any request: a chain that is not a list, a declared depth that does not
# match, a delegated session without a chain.
violations contains "delegation_chain_not_a_list" if {
	value := input.delegation.chain
	not is_array(value)
}

violations contains "delegation_depth_mismatch" if {
	depth := input.delegation.depth
	depth != null
	depth != count(chain)
}

violations contains "delegated_session_without_chain" if {
	delegated_session
	count(chain) == 0
}

# The violations of the hops, checked only when there is a chain (most requests have none,
# and each check regorus visits costs about 3 µs: docs/performance.md).
violations contains violation if {
	count(chain) > 0
	some violation in chain_violations
}

chain_violations contains "delegation_chain_too_long" if count(chain) > max_chain_length

chain_violations contains "delegation_hop_incomplete" if {
	some hop in chain
	not complete(hop)
}

chain_violations contains "delegation_cycle" if {
	applications := [hop.application_id | some hop in chain]
	count({app | some app in applications}) != count(applications)
}

# A hop may only pass on scopes the hop before it received.
chain_violations contains "delegation_scope_escalation" if {
	some i, scopes in hop_scopes
	i > 0
	some scope in scopes
	not scope in hop_scopes[i - 1]
}

chain_violations contains "non_delegable_scope" if {
	some scopes in hop_scopes
	some scope in scopes
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in non_delegable_actions
}

result := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["no_delegation"]} if {
	count(chain) == 0
} else := {"decision": "allow", "reasons": ["delegation_constraints_met"]}
