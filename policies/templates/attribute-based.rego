# name: Attribute-Based Access Control
# description: Decides from attributes of the subject and of the request context. An
#   inactive subject, or a request whose risk score exceeds max_risk_score, is denied. Each
#   requested scope is allowed when the subject's clearance, department and type meet the
#   requirement of the scope (or of its action). All allowed: allow; some: partial; none: deny.
package caracal.authz

import rego.v1

max_risk_score := 70

inactive_statuses := {"suspended", "disabled", "terminated"}

# Requirement per scope, or per action ("write" applies to every "<resource>:write").
# min_clearance: lowest subject.attributes.clearance (a number; absent counts as 0);
# departments: allowed subject.attributes.department values (any when absent);
# subject_types: allowed subject.type values (any when absent).
scope_requirements := {
	"read": {"min_clearance": 0},
	"write": {"min_clearance": 2},
	"delete": {"min_clearance": 3},
	"admin": {"min_clearance": 4, "departments": {"security", "platform"}, "subject_types": {"user"}},
}

# For scopes and actions that scope_requirements does not list.
default_requirement := {"min_clearance": 1}

# Input fields of the wrong type count as absent.
attributes := value if {
	value := input.subject.attributes
	is_object(value)
} else := {}

clearance := value if {
	value := attributes.clearance
	is_number(value)
} else := 0

requested := value if {
	value := input.requested_scopes
	is_array(value)
} else := []

# Requested scope -> its requirement: by scope, else by action (the part after the last
# ":"; a scope without ":" is its own action), else default_requirement.
requirement := {scope: req |
	some scope in requested
	is_string(scope)
	parts := split(scope, ":")
	by_action := object.get(scope_requirements, parts[count(parts) - 1], default_requirement)
	req := object.get(scope_requirements, scope, by_action)
}

refused contains scope if {
	some scope, req in requirement
	clearance < object.get(req, "min_clearance", 0)
}

refused contains scope if {
	some scope, req in requirement
	departments := req.departments
	not attributes.department in departments
}

refused contains scope if {
	some scope, req in requirement
	subject_types := req.subject_types
	not input.subject.type in subject_types
}

granted := [scope | some scope in requested; requirement[scope]; not scope in refused]

inactive if attributes.status in inactive_statuses

risk_too_high if {
	risk := input.context.risk_score
	not is_number(risk)
}

risk_too_high if input.context.risk_score > max_risk_score

default result := {"decision": "deny", "reasons": ["attributes_permit_no_requested_scope"]}

result := {"decision": "deny", "reasons": ["subject_inactive"]} if {
	inactive
} else := {"decision": "deny", "reasons": ["risk_score_too_high"]} if {
	risk_too_high
} else := {"decision": "deny", "reasons": ["no_scopes_requested"]} if {
	count(requested) == 0
} else := {"decision": "allow", "reasons": ["attributes_permit_requested_scopes"]} if {
	count(granted) == count(requested)
} else := {
	"decision": "partial",
	"reasons": ["attributes_permit_some_requested_scopes"],
	"granted_scopes": granted,
} if {
	count(granted) > 0
}
