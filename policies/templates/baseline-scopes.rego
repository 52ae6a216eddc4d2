# name: Baseline: Scopes
# description: Checks the requested scopes themselves: at least one and at most max_scopes,
#   each well formed (lowercase letters, digits and ":_./-", up to 200 characters), and
#   offered by the resource. Scopes the resource does not offer are dropped (partial); a
#   request with none left is denied.
package caracal.authz

import rego.v1

# One rule gathers the facts (every rule an evaluation visits costs microseconds in the
# engine, so the settings are local values); decide() picks the answer.
result := decide(requested, max_scopes, malformed, granted) if {
	# Settings: at most max_scopes scopes of at most max_scope_length characters, made of
	# scope_characters (the grants API's ^[a-z0-9:_./-]+$; trim costs a fraction of a
	# regex.match in regorus).
	max_scopes := 64
	max_scope_length := 200
	scope_characters := "abcdefghijklmnopqrstuvwxyz0123456789:_./-"

	# Input fields of the wrong type count as absent.
	requested := [scope | is_array(input.requested_scopes); some scope in input.requested_scopes]
	offered := {scope | is_array(input.resource.scopes); some scope in input.resource.scopes}

	well_formed := [scope |
		some scope in requested
		is_string(scope)
		scope != ""
		count(scope) <= max_scope_length
		trim(scope, scope_characters) == ""
	]
	malformed := count(well_formed) != count(requested)
	granted := [scope | some scope in requested; scope in offered]
}

decide(requested, max_scopes, malformed, granted) := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "deny", "reasons": ["too_many_scopes"]} if {
	count(requested) > max_scopes
} else := {"decision": "deny", "reasons": ["malformed_scope"]} if {
	malformed
} else := {"decision": "allow", "reasons": ["scopes_offered_by_resource"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["some_scopes_not_offered_by_resource"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
} else := {"decision": "deny", "reasons": ["scopes_not_offered_by_resource"]}
