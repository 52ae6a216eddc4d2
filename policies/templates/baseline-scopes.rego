# name: Baseline: Scopes
# description: Checks the requested scopes themselves: at least one and at most max_scopes,
#   each well formed (lowercase letters, digits and ":_./-", up to 200 characters), and
#   offered by the resource. Scopes the resource does not offer are dropped (partial); a
#   request with none left is denied.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# At most this many requested scopes.
max_scopes := 64

# A well-formed scope: a string of 1 to 200 characters, all lowercase letters, digits or
# ":_./-" (the grants API's ^[a-z0-9:_./-]+$).
well_formed(scope) if {
	is_string(scope)
	scope != ""
	count(scope) <= 200
	trim(scope, "abcdefghijklmnopqrstuvwxyz0123456789:_./-") == ""
}

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

requested := scopes if {
	scopes := input.requested_scopes
	is_array(scopes)
} else := []

# ---- Policy -------------------------------------------------------------------------

# The requested scopes the resource offers, in the order requested, repeats kept.
granted := [scope | some scope in requested; scope in offered] if {
	is_array(input.resource.scopes)

	# As a set, so each lookup is one step whatever the lengths.
	offered := {scope | some scope in input.resource.scopes}
} else := []

result := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "deny", "reasons": ["too_many_scopes"]} if {
	count(requested) > max_scopes
} else := {"decision": "deny", "reasons": ["malformed_scope"]} if {
	some scope in requested
	not well_formed(scope)
} else := {"decision": "allow", "reasons": ["scopes_offered_by_resource"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["some_scopes_not_offered_by_resource"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
} else := {"decision": "deny", "reasons": ["scopes_not_offered_by_resource"]}
