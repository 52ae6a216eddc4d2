# name: Delegation
# description: Lets agents act for users through an explicit delegation chain. Without a
#   chain, users and services are allowed and agents are denied. With a chain, its last hop
#   must delegate to the requesting application, it may have at most max_depth hops, and only
#   scopes that every hop delegated are granted. All requested: allow; some: partial; none: deny.
package caracal.authz

import rego.v1

# Input fields of the wrong type count as absent.
as_array(value) := value if is_array(value)
else := []

max_depth := 3

# Each hop: {subject_id (who delegates), application_id (who receives), scopes (delegated)},
# ordered from the originating user to the requesting application.
raw_chain := as_array(object.get(input, ["delegation", "chain"], []))

chain := [hop | some hop in raw_chain; is_object(hop)]

subject_type := object.get(input, ["subject", "type"], "")

application_id := object.get(input, ["application", "id"], "")

requested := [scope | some scope in as_array(object.get(input, "requested_scopes", []))]

last_hop := chain[count(chain) - 1]

# Each hop's delegated scopes as a set, built once: looking scopes up in arrays would make
# the cost grow with the product of the list lengths.
hop_scopes := [{scope | some scope in as_array(object.get(hop, "scopes", []))} | some hop in chain]

# Delegation only narrows: a scope reaches the application only if every hop delegated it.
delegated := {scope |
	some scope in hop_scopes[0]
	every delegated_by_hop in hop_scopes {
		scope in delegated_by_hop
	}
}

granted := [scope | some scope in requested; scope in delegated]

default result := {"decision": "deny", "reasons": ["delegation_covers_no_requested_scope"]}

result := {"decision": "deny", "reasons": ["agent_requires_delegation"]} if {
	count(raw_chain) == 0
	subject_type == "agent"
} else := {"decision": "allow", "reasons": ["no_delegation"]} if {
	count(raw_chain) == 0
} else := {"decision": "deny", "reasons": ["delegation_hop_invalid"]} if {
	count(chain) != count(raw_chain)
} else := {"decision": "deny", "reasons": ["delegation_too_deep"]} if {
	count(chain) > max_depth
} else := {"decision": "deny", "reasons": ["delegation_not_to_this_application"]} if {
	object.get(last_hop, "application_id", null) != application_id
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
