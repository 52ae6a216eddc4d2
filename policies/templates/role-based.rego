# name: Role-Based Access Control
# description: Grants the requested scopes that the subject's roles allow. A role lists
#   scopes ("orders:read"), actions ("read" matches every "<resource>:read" scope) or "*"
#   (every scope the resource offers). All requested scopes allowed: allow; some: partial
#   with the allowed ones; none: deny. Edit role_scopes to match your roles.
package caracal.authz

import rego.v1

# Role name -> the scopes, actions or "*" that the role grants.
role_scopes := {
	"admin": {"*"},
	"editor": {"read", "write"},
	"viewer": {"read"},
	"auditor": {"read", "audit:export"},
}

# Input fields of the wrong type count as absent.
roles := value if {
	value := input.subject.roles
	is_array(value)
} else := []

requested := value if {
	value := input.requested_scopes
	is_array(value)
} else := []

# Everything the subject's known roles grant: scopes, actions and "*".
grants := {grant | some role in roles; some grant in role_scopes[role]}

# Requested scopes granted by name ...
allowed contains scope if {
	some scope in requested
	scope in grants
}

# ... by action (the part after the last ":"; a scope without ":" is its own action) ...
allowed contains scope if {
	some scope in requested
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in grants
}

# ... or through "*", when the resource offers the scope.
allowed contains scope if {
	"*" in grants
	some scope in requested
	scope in object.get(input, ["resource", "scopes"], [])
}

granted := [scope | some scope in requested; scope in allowed]

default result := {"decision": "deny", "reasons": ["roles_allow_no_requested_scope"]}

result := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
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
}
