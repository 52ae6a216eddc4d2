# name: Delegation
# description: Lets agents act for users through an explicit delegation chain. Without a
#   chain, users and services are allowed and agents are denied. With a chain, its last hop
#   must delegate to the requesting application, it may have at most max_depth hops, and only
#   scopes that every hop delegated are granted. All requested: allow; some: partial; none: deny.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# The longest delegation chain accepted.
max_depth := 3

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent. Each hop of input.delegation.chain is
# {subject_id (who delegates), application_id (who receives), scopes (delegated)}, ordered
# from the originating user to the requesting application.

chain := value if {
	value := input.delegation.chain
	is_array(value)
} else := []

requested := scopes if {
	scopes := input.requested_scopes
	is_array(scopes)
} else := []

# ---- Policy -------------------------------------------------------------------------

# Every hop must be an object.
hops := [hop | some hop in chain; is_object(hop)]

# The scopes a hop delegated, as a set (so each lookup is one step, whatever the lengths).
delegated_by(hop) := {scope | some scope in hop.scopes} if is_array(hop.scopes)
else := set()

hop_scopes := [delegated_by(hop) | some hop in hops]

# Delegation only narrows: a scope reaches the application only if every hop delegated it.
delegated := {scope |
	some scope in hop_scopes[0]
	every scopes in hop_scopes {
		scope in scopes
	}
}

ends_at_this_application if hops[count(hops) - 1].application_id == input.application.id

granted := [scope | some scope in requested; scope in delegated]

default result := {"decision": "deny", "reasons": ["delegation_covers_no_requested_scope"]}

result := {"decision": "deny", "reasons": ["agent_requires_delegation"]} if {
	count(chain) == 0
	input.subject.type == "agent"
} else := {"decision": "allow", "reasons": ["no_delegation"]} if {
	count(chain) == 0
} else := {"decision": "deny", "reasons": ["delegation_hop_invalid"]} if {
	count(hops) != count(chain)
} else := {"decision": "deny", "reasons": ["delegation_too_deep"]} if {
	count(hops) > max_depth
} else := {"decision": "deny", "reasons": ["delegation_not_to_this_application"]} if {
	not ends_at_this_application
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "allow", "reasons": ["delegation_covers_requested_scopes"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["delegation_covers_some_requested_scopes"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
}
