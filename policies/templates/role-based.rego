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

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

requested := scopes if {
	scopes := input.requested_scopes
	is_array(scopes)
} else := []

roles := value if {
	value := input.subject.roles
	is_array(value)
} else := []

# The scopes the resource offers, as a set (looked up once per requested scope).
offered := {scope | some scope in input.resource.scopes} if is_array(input.resource.scopes)
else := set()

# ---- Policy -------------------------------------------------------------------------

# Everything the subject's known roles grant.
grants contains grant if {
	some role in roles
	some grant in role_scopes[role]
}

# A requested scope is allowed when a role grants it by name, or by its action (the part
# after its last ":", so "read" allows "orders:read"; a scope without ":" is its own
# action), or grants "*" and the resource offers it.
allowed(scope) if scope in grants
else if {
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in grants
} else if {
	"*" in grants
	scope in offered
}

# In the order requested, repeats kept.
granted := [scope | some scope in requested; allowed(scope)]

result := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "deny", "reasons": ["subject_has_no_known_role"]} if {
	count(grants) == 0
} else := {"decision": "allow", "reasons": ["roles_allow_requested_scopes"]} if {
	count(granted) == count(requested)
} else := {"decision": "deny", "reasons": ["roles_allow_no_requested_scope"]} if {
	count(granted) == 0
} else := {
	"decision": "partial",
	"reasons": ["roles_allow_some_requested_scopes"],
	"granted_scopes": granted,
}
