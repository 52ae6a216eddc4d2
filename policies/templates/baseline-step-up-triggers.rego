# name: Baseline: Step-Up Triggers
# description: Asks for a fresh MFA challenge (step_up: {"type": "mfa", "ttl": 300}) when a
#   sensitive scope is requested or the risk score reaches settings.risk_threshold, unless the
#   session already satisfied a step-up. Until then, only the non-sensitive requested scopes
#   are granted (none at elevated risk). Otherwise allows.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

settings := {
	# The challenge asked for: its type and how long it stays valid (seconds).
	"step_up": {"type": "mfa", "ttl": 300},
	# A risk score (input.context.risk_score) at or above this asks for a step-up.
	"risk_threshold": 60,
	# A scope is sensitive when it is listed here, or when its action (the part after its
	# last ":"; a scope without ":" is its own action) is.
	"sensitive_scopes": {"payments:write", "users:impersonate"},
	"sensitive_actions": {"admin", "delete", "transfer"},
}

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

requested := scopes if {
	scopes := input.requested_scopes
	is_array(scopes)
} else := []

# ---- Policy -------------------------------------------------------------------------

# The sensitive scopes requested: listed, or with a sensitive action.
sensitive_requested contains scope if {
	some scope in requested
	scope in settings.sensitive_scopes
}

sensitive_requested contains scope if {
	some scope in requested
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in settings.sensitive_actions
}

default result := {"decision": "allow", "reasons": ["no_step_up_required"]}

result := {"decision": "allow", "reasons": ["step_up_satisfied"]} if {
	# Only the boolean true counts: the PDP sets it, a caller cannot.
	input.session.step_up_satisfied == true
} else := {
	"decision": "partial",
	"reasons": ["elevated_risk_requires_step_up"],
	"granted_scopes": [],
	"step_up": settings.step_up,
} if {
	# Elevated risk: a number at or above the threshold.
	risk := input.context.risk_score
	is_number(risk)
	risk >= settings.risk_threshold
} else := {
	"decision": "partial",
	"reasons": ["sensitive_scope_requires_step_up"],
	"granted_scopes": [scope | some scope in requested; not scope in sensitive_requested],
	"step_up": settings.step_up,
} if {
	count(sensitive_requested) > 0
}
