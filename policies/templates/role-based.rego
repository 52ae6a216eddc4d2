# name: Role-Based Access Control
# description: Grants the requested scopes that the subject's roles allow. A role lists
#   scopes ("orders:read"), actions ("read" matches every "<resource>:read" scope) or "*"
#   (every scope the resource offers). All requested scopes allowed: allow; some: partial
#   with the allowed ones; none: deny. Edit role_scopes to match your roles.
package caracal.authz

import rego.v1

# One rule gathers the facts (every rule an evaluation visits costs microseconds in the
# engine, so the settings are local values); decide() picks the answer.
result := decide(requested, grants, granted) if {
	# Role name -> the scopes, actions or "*" that the role grants. Edit to match your roles.
	role_scopes := {
		"admin": {"*"},
		"editor": {"read", "write"},
		"viewer": {"read"},
		"auditor": {"read", "audit:export"},
	}

	# Input fields of the wrong type count as absent.
	requested := [scope | is_array(input.requested_scopes); some scope in input.requested_scopes]

	# Everything the subject's known roles grant: scopes, actions and "*".
	grants := {grant |
		is_array(input.subject.roles)
		some role in input.subject.roles
		some grant in role_scopes[role]
	}

	# Requested scopes granted by name, by action (the part after the last ":"; a scope
	# without ":" is its own action), or through "*" when the resource offers the scope.
	by_action := {scope |
		some scope in requested
		is_string(scope)
		parts := split(scope, ":")
		last := count(parts) - 1
		parts[last] in grants
	}
	by_star := {scope |
		"*" in grants
		some scope in requested
		scope in object.get(input, ["resource", "scopes"], [])
	}
	granted := [scope |
		some scope in requested
		true in [scope in grants, scope in by_action, scope in by_star]
	]
}

decide(requested, grants, granted) := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "deny", "reasons": ["subject_has_no_known_role"]} if {
	count(grants) == 0
} else := {"decision": "allow", "reasons": ["roles_allow_requested_scopes"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["roles_allow_some_requested_scopes"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
} else := {"decision": "deny", "reasons": ["roles_allow_no_requested_scope"]}
