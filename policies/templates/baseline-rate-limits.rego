# name: Baseline: Rate Limits
# description: Denies when input.context.request_rate (the subject's requests per minute)
#   exceeds the limit for the subject's type, and asks the caller to throttle above
#   warn_ratio of it; the limit and the observed rate are returned as obligations. A
#   missing rate is allowed (nothing to judge), a rate that is not a number is denied.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

settings := {
	# Requests per minute, by subject type; default_limit for other types.
	"limits": {"user": 600, "agent": 120, "service": 3000},
	"default_limit": 300,
	# Above this share of the limit the caller is asked to throttle.
	"warn_ratio": 0.8,
	# Seconds a denied caller is asked to wait.
	"retry_after": 60,
}

# ---- Input --------------------------------------------------------------------------

rate := input.context.request_rate

limit := value if {
	value := settings.limits[input.subject.type]
} else := settings.default_limit

# ---- Policy -------------------------------------------------------------------------

observed := {"rate_limit": {"limit": limit, "observed": rate}}

default result := {"decision": "allow", "reasons": ["request_rate_unknown"]}

# A missing rate falls through to the default (rate != null is not true then); a rate that
# is present but not a number is denied.
result := {"decision": "deny", "reasons": ["request_rate_invalid"]} if {
	rate != null
	not is_number(rate)
} else := {
	"decision": "deny",
	"reasons": ["rate_limit_exceeded"],
	"obligations": object.union(observed, {"retry_after": settings.retry_after}),
} if {
	rate > limit
} else := {
	"decision": "allow",
	"reasons": ["rate_limit_near"],
	"obligations": object.union(observed, {"throttle": true}),
} if {
	rate > limit * settings.warn_ratio
} else := {
	"decision": "allow",
	"reasons": ["rate_within_limit"],
	"obligations": observed,
} if {
	is_number(rate)
}
