# name: Attribute-Based Access Control
# description: Decides from attributes of the subject and of the request context. An
#   inactive subject, or a request whose risk score exceeds max_risk_score, is denied. Each
#   requested scope is allowed when the subject's clearance, department and type meet the
#   requirement of the scope (or of its action). All allowed: allow; some: partial; none: deny.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

settings := {
	# Requests whose input.context.risk_score is above this are denied.
	"max_risk_score": 70,
	# Subjects whose attributes.status is one of these are denied.
	"inactive_statuses": {"suspended", "disabled", "terminated"},
	# Requirement per scope, or per action ("write" applies to every "<resource>:write").
	# min_clearance: lowest subject.attributes.clearance (a number; absent counts as 0);
	# departments: allowed subject.attributes.department values (any when absent);
	# subject_types: allowed subject.type values (any when absent).
	"scope_requirements": {
		"read": {"min_clearance": 0},
		"write": {"min_clearance": 2},
		"delete": {"min_clearance": 3},
		"admin": {
			"min_clearance": 4,
			"departments": {"security", "platform"},
			"subject_types": {"user"},
		},
	},
	# For scopes and actions that scope_requirements does not list.
	"default_requirement": {"min_clearance": 1},
}

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

# A number as itself, any other value as 0 (for the subject's clearance, read in granted).
number_or_zero(value) := value if is_number(value) else := 0

# ---- Policy -------------------------------------------------------------------------
# Few rules, with named local values and one helper function: each rule regorus evaluates
# costs about 3 µs, a function call about half that (docs/performance.md).

result := {"decision": "deny", "reasons": ["subject_inactive"]} if {
	input.subject.attributes.status in settings.inactive_statuses
} else := {"decision": "deny", "reasons": ["risk_score_too_high"]} if {
	input.context.risk_score > settings.max_risk_score
} else := {"decision": "deny", "reasons": ["risk_score_too_high"]} if {
	# A risk score that is present but not a number counts as too high.
	type_name(input.context.risk_score) != "number"
} else := {"decision": "allow", "reasons": ["attributes_permit_requested_scopes"]} if {
	# Scopes were requested and every one is granted (granted keeps their order and repeats).
	input.requested_scopes != []
	granted == input.requested_scopes
} else := {
	"decision": "partial",
	"reasons": ["attributes_permit_some_requested_scopes"],
	"granted_scopes": granted,
} if {
	granted != []
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	not scopes_requested
} else := {"decision": "deny", "reasons": ["attributes_permit_no_requested_scope"]}

# The request asks for at least one scope.
scopes_requested if {
	is_array(input.requested_scopes)
	count(input.requested_scopes) > 0
}

# The requested scopes whose requirement the subject meets, in the order requested, repeats
# kept; a scope that is not a string is never granted, and nothing when requested_scopes is
# not a list. The values every scope's test reads are named once, after the comprehension.
granted := [scope |
	some scope in input.requested_scopes
	is_string(scope)

	# The scope's requirement: its own, else its action's (the part after the last ":"; a
	# scope without ":" is its own action), else the default.
	parts := split(scope, ":")
	action := parts[count(parts) - 1]
	requirement := object.get(
		requirements,
		scope,
		object.get(requirements, action, default_requirement),
	)

	# The subject meets it with enough clearance and, where the requirement lists
	# departments or subject types, one of them (a subject without one meets no such list).
	clearance >= object.get(requirement, "min_clearance", 0)
	every field, allowed in object.remove(requirement, {"min_clearance"}) {
		subject_facts[field] in allowed
	}
] if {
	is_array(input.requested_scopes)
	requirements := settings.scope_requirements
	default_requirement := settings.default_requirement

	# The subject's clearance (absent, or not a number: 0).
	clearance := number_or_zero(object.get(input, ["subject", "attributes", "clearance"], 0))
} else := []

# The subject's department and type as requirements list them (null when absent).
subject_facts := {
	"departments": object.get(input, ["subject", "attributes", "department"], null),
	"subject_types": object.get(input, ["subject", "type"], null),
}
