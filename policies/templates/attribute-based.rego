# name: Attribute-Based Access Control
# description: Decides from attributes of the subject and of the request context. An
#   inactive subject, or a request whose risk score exceeds max_risk_score, is denied. Each
#   requested scope is allowed when the subject's clearance, department and type meet the
#   requirement of the scope (or of its action). All allowed: allow; some: partial; none: deny.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# Requests whose input.context.risk_score is above this are denied.
max_risk_score := 70

# Subjects whose attributes.status is one of these are denied.
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

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

attributes := value if {
	value := input.subject.attributes
	is_object(value)
} else := {}

clearance := value if {
	value := attributes.clearance
	is_number(value)
} else := 0

requested := scopes if {
	scopes := input.requested_scopes
	is_array(scopes)
} else := []

# ---- Policy -------------------------------------------------------------------------

# The requirement of a requested scope: its own, else its action's (the part after the last
# ":"; a scope without ":" is its own action), else default_requirement.
requirement(scope) := req if {
	req := scope_requirements[scope]
} else := req if {
	parts := split(scope, ":")
	req := scope_requirements[parts[count(parts) - 1]]
} else := default_requirement

# The subject meets a requirement when it has the clearance and, where the requirement
# lists departments or subject types, one of them (a subject without a department or a
# type meets no such list).
meets(req) if {
	clearance >= object.get(req, "min_clearance", 0)
	department_allowed(req)
	subject_type_allowed(req)
}

department_allowed(req) if not req.departments

department_allowed(req) if attributes.department in req.departments

subject_type_allowed(req) if not req.subject_types

subject_type_allowed(req) if input.subject.type in req.subject_types

# In the order requested, repeats kept; a scope that is not a string is never granted.
granted := [scope |
	some scope in requested
	is_string(scope)
	meets(requirement(scope))
]

inactive if attributes.status in inactive_statuses

# A risk score that is present but not a number counts as too high.
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
