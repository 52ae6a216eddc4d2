# name: Baseline: Step-Up Triggers
# description: Asks for a fresh MFA challenge (step_up: {"type": "mfa", "ttl": 300}) when a
#   sensitive scope is requested or the risk score reaches risk_threshold, unless the
#   session already satisfied a step-up. Until then, only the non-sensitive requested scopes
#   are granted (none at elevated risk). Otherwise allows.
package caracal.authz

import rego.v1

step_up := {"type": "mfa", "ttl": 300}

risk_threshold := 60

# Sensitive scopes, and actions that make any "<resource>:<action>" scope sensitive.
sensitive_scopes := {"payments:write", "users:impersonate"}

sensitive_actions := {"admin", "delete", "transfer"}

# Input fields of the wrong type count as absent.
requested := value if {
	value := input.requested_scopes
	is_array(value)
} else := []

sensitive contains scope if {
	some scope in requested
	scope in sensitive_scopes
}

# The action is the part after the last ":"; a scope without ":" is its own action.
sensitive contains scope if {
	some scope in requested
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in sensitive_actions
}

satisfied if input.session.step_up_satisfied == true

elevated_risk if {
	risk := input.context.risk_score
	is_number(risk)
	risk >= risk_threshold
}

default result := {"decision": "allow", "reasons": ["no_step_up_required"]}

result := {"decision": "allow", "reasons": ["step_up_satisfied"]} if {
	satisfied
} else := {
	"decision": "partial",
	"reasons": ["elevated_risk_requires_step_up"],
	"granted_scopes": [],
	"step_up": step_up,
} if {
	elevated_risk
} else := {
	"decision": "partial",
	"reasons": ["sensitive_scope_requires_step_up"],
	"granted_scopes": [scope | some scope in requested; not scope in sensitive],
	"step_up": step_up,
} if {
	count(sensitive) > 0
}
