# name: Role-Based Access Control
# description: Grants the requested scopes that the subject's roles allow. A role lists
#   scopes ("orders:read"), actions ("read" matches every "<resource>:read" scope) or "*"
#   (every scope the resource offers). All requested scopes allowed: allow; some: partial
#   with the allowed ones; none: deny. Edit role_scopes to match your roles.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# Role name -> what the role grants: scopes ("audit:export"), actions ("read" grants every
# "<resource>:read" scope) or "*" (every scope the resource offers).
role_scopes := {
	"admin": {"*"},
	"editor": {"read", "write"},
	"viewer": {"read"},
	"auditor": {"read", "audit:export"},
}

# ---- Policy -------------------------------------------------------------------------
# A field of the wrong type counts as absent. The work is done in one rule body with named
# local values: each rule regorus evaluates costs about 3 µs (docs/performance.md).

# The request asks for at least one scope.
scopes_requested if {
	is_array(input.requested_scopes)
	count(input.requested_scopes) > 0
}

# A request for scopes by a subject with a known role: allow, partial or deny by how many of
# the requested scopes the roles allow (decision below).
result := decision(requested, granted) if {
	requested := input.requested_scopes
	is_array(requested)
	count(requested) > 0

	# Everything the subject's known roles grant: scopes, actions and "*".
	roles := input.subject.roles
	is_array(roles)
	grants := {grant | some role in roles; some grant in role_scopes[role]}
	count(grants) > 0

	# The scopes the resource offers, as a set looked up once per requested scope; needed
	# only when a role grants "*".
	offered := {scope |
		"*" in grants
		is_array(input.resource.scopes)
		some scope in input.resource.scopes
	}

	# The requested scopes the roles allow, in the order requested, repeats kept.
	granted := [scope | some scope in requested; allowed(scope, grants, offered)]
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	not scopes_requested
} else := {"decision": "deny", "reasons": ["subject_has_no_known_role"]}

# A requested scope is allowed when a role grants it by name, or by its action (the part
# after its last ":", so "read" allows "orders:read"; a scope without ":" is its own
# action), or grants "*" and the resource offers it.
allowed(scope, grants, offered) if scope in grants
else if {
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in grants
} else if {
	"*" in grants
	scope in offered
}

# All requested scopes allowed: allow; none: deny; some: partial with the allowed ones.
decision(requested, granted) := {"decision": "allow", "reasons": ["roles_allow_requested_scopes"]} if {
	count(granted) == count(requested)
} else := {"decision": "deny", "reasons": ["roles_allow_no_requested_scope"]} if {
	count(granted) == 0
} else := {
	"decision": "partial",
	"reasons": ["roles_allow_some_requested_scopes"],
	"granted_scopes": granted,
}
