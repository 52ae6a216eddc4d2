# name: Baseline: Scopes
# description: Checks the requested scopes themselves: at least one and at most max_scopes,
#   each well formed (lowercase letters, digits and ":_./-", up to 200 characters), and
#   offered by the resource. Scopes the resource does not offer are dropped (partial); a
#   request with none left is denied.
package caracal.authz

import rego.v1

max_scopes := 64

max_scope_length := 200

# The characters a scope may contain (the grants API's ^[a-z0-9:_./-]+$). Checked with
# trim, which costs a fraction of a regex.match in regorus.
scope_characters := "abcdefghijklmnopqrstuvwxyz0123456789:_./-"

# Input fields of the wrong type count as absent.
requested := value if {
	value := input.requested_scopes
	is_array(value)
} else := []

offered := value if {
	value := input.resource.scopes
	is_array(value)
} else := []

well_formed if {
	every scope in requested {
		is_string(scope)
		scope != ""
		count(scope) <= max_scope_length
		trim(scope, scope_characters) == ""
	}
}

granted := [scope | some scope in requested; scope in offered]

default result := {"decision": "deny", "reasons": ["scopes_not_offered_by_resource"]}

result := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "deny", "reasons": ["too_many_scopes"]} if {
	count(requested) > max_scopes
} else := {"decision": "deny", "reasons": ["malformed_scope"]} if {
	not well_formed
} else := {"decision": "allow", "reasons": ["scopes_offered_by_resource"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["some_scopes_not_offered_by_resource"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
}
