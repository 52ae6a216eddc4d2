# name: Baseline: Step-Up Triggers
# description: Asks for a fresh MFA challenge (step_up: {"type": "mfa", "ttl": 300}) when a
#   sensitive scope is requested or the risk score reaches risk_threshold, unless the
#   session already satisfied a step-up. Until then, only the non-sensitive requested scopes
#   are granted (none at elevated risk). Otherwise allows.
package caracal.authz

import rego.v1

# Settings live inside the rules as local values: every rule an evaluation visits costs
# microseconds in the engine. The challenge is {"type": "mfa", "ttl": 300} (seconds), the
# risk threshold 60.

default result := {"decision": "allow", "reasons": ["no_step_up_required"]}

result := {"decision": "allow", "reasons": ["step_up_satisfied"]} if {
	input.session.step_up_satisfied == true
} else := {
	"decision": "partial",
	"reasons": ["elevated_risk_requires_step_up"],
	"granted_scopes": [],
	"step_up": {"type": "mfa", "ttl": 300},
} if {
	risk := input.context.risk_score
	is_number(risk)
	risk >= 60 # risk_threshold
} else := {
	"decision": "partial",
	"reasons": ["sensitive_scope_requires_step_up"],
	"granted_scopes": [scope | some scope in requested; not scope in sensitive],
	"step_up": {"type": "mfa", "ttl": 300},
} if {
	# Sensitive scopes, and actions that make any "<resource>:<action>" scope sensitive.
	sensitive_scopes := {"payments:write", "users:impersonate"}
	sensitive_actions := {"admin", "delete", "transfer"}

	# Input fields of the wrong type count as absent.
	requested := [scope | is_array(input.requested_scopes); some scope in input.requested_scopes]

	# The action is the part after the last ":"; a scope without ":" is its own action.
	sensitive := {scope |
		some scope in requested
		is_string(scope)
		parts := split(scope, ":")
		last := count(parts) - 1
		true in [scope in sensitive_scopes, parts[last] in sensitive_actions]
	}
	count(sensitive) > 0
}
