# name: Baseline: Rate Limits
# description: Denies when input.context.request_rate (the subject's requests per minute)
#   exceeds the limit for the subject's type, and asks the caller to throttle above
#   warn_ratio of it; the limit and the observed rate are returned as obligations. A
#   missing rate is allowed (nothing to judge), a rate that is not a number is denied.
package caracal.authz

import rego.v1

default result := {"decision": "allow", "reasons": ["request_rate_unknown"]}

# One rule gathers the facts (every rule an evaluation visits costs microseconds in the
# engine, so the settings are local values); decide() picks the answer.
result := decide(rate, limit) if {
	# Requests per minute, by subject type; default_limit for other types.
	limits := {"user": 600, "agent": 120, "service": 3000}
	default_limit := 300

	rate := input.context.request_rate
	found := array.concat([value | value := limits[input.subject.type]], [default_limit])
	limit := found[0]
}

# Above warn_ratio (0.8) of the limit the caller is asked to throttle; a denied caller to
# retry after retry_after seconds (60).
decide(rate, limit) := {"decision": "deny", "reasons": ["request_rate_invalid"]} if {
	not is_number(rate)
	rate != null
} else := {
	"decision": "deny",
	"reasons": ["rate_limit_exceeded"],
	"obligations": {"rate_limit": {"limit": limit, "observed": rate}, "retry_after": 60},
} if {
	rate > limit
} else := {
	"decision": "allow",
	"reasons": ["rate_limit_near"],
	"obligations": {"rate_limit": {"limit": limit, "observed": rate}, "throttle": true},
} if {
	rate > limit * 0.8
} else := {
	"decision": "allow",
	"reasons": ["rate_within_limit"],
	"obligations": {"rate_limit": {"limit": limit, "observed": rate}},
} if {
	is_number(rate)
}
