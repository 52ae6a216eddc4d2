# name: Role-Based Access Control
# description: Grants the requested scopes that the subject's roles allow. A role lists
#   scopes ("orders:read"), actions ("read" matches every "<resource>:read" scope) or "*"
#   (every scope the resource offers). All requested scopes allowed: allow; some: partial
#   with the allowed ones; none: deny. Edit role_scopes to match your roles.
package caracal.authz

import rego.v1

# Written for speed: the engine charges for every rule visited, function called and builtin
# run, type checks included (comparisons are cheap), so everything is computed once in this
# body; an input that requests no scope or has no known role falls through to the `else`
# answers below.
result := decide(requested, granted) if {
	# Role name -> the scopes, actions or "*" that the role grants. Edit to match your roles.
	role_scopes := {
		"admin": {"*"},
		"editor": {"read", "write"},
		"viewer": {"read"},
		"auditor": {"read", "audit:export"},
	}

	# Input fields of the wrong type count as absent. `[] <= x; x < {}; x < set()` is
	# is_array(x) without a builtin call: values sort by type, arrays after strings and
	# before objects and sets.
	requested := input.requested_scopes
	[] <= requested
	requested < {}
	requested < set()
	requested != []
	roles := input.subject.roles
	[] <= roles
	roles < {}
	roles < set()

	# Everything the subject's known roles grant: scopes, actions and "*".
	grants := {grant | some role in roles; some grant in role_scopes[role]}
	grants != set()

	# Requested scopes granted through "*" because the resource offers them, and string
	# scopes granted by action: the part after the last ":" (a scope without ":" is its own
	# action). `"" <= scope; scope < []` is is_string(scope) the same way.
	by_star := {scope |
		"*" in grants
		offered := {s | some s in object.get(input, ["resource", "scopes"], [])} # a set: no scan per scope
		some scope in requested
		scope in offered
	}
	by_action := {scope |
		some scope in requested
		"" <= scope
		scope < []
		parts := split(scope, ":")
		parts[count(parts) - 1] in grants
	}
	allowed := (grants | by_star) | by_action
	granted := [scope | some scope in requested; scope in allowed]
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	not is_array(input.requested_scopes)
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	input.requested_scopes == []
} else := {"decision": "deny", "reasons": ["subject_has_no_known_role"]}

# granted is requested without the scopes no role allows, so equal means all are allowed.
decide(requested, granted) := {"decision": "allow", "reasons": ["roles_allow_requested_scopes"]} if {
	granted == requested
} else := {"decision": "deny", "reasons": ["roles_allow_no_requested_scope"]} if {
	granted == []
} else := {
	"decision": "partial",
	"reasons": ["roles_allow_some_requested_scopes"],
	"granted_scopes": granted,
}
