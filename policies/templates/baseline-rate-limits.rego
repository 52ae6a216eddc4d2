# name: Baseline: Rate Limits
# description: Denies when input.context.request_rate (the subject's requests per minute)
#   exceeds the limit for the subject's type, and asks the caller to throttle above
#   warn_ratio of it; the limit and the observed rate are returned as obligations. A
#   missing rate is allowed (nothing to judge), a rate that is not a number is denied.
package caracal.authz

import rego.v1

# Requests per minute, by subject type.
limits := {"user": 600, "agent": 120, "service": 3000}

default_limit := 300

warn_ratio := 0.8

retry_after_seconds := 60

limit := value if {
	value := limits[input.subject.type]
} else := default_limit

default result := {"decision": "allow", "reasons": ["request_rate_unknown"]}

result := {"decision": "deny", "reasons": ["request_rate_invalid"]} if {
	not is_number(input.context.request_rate)
	input.context.request_rate != null
} else := {
	"decision": "deny",
	"reasons": ["rate_limit_exceeded"],
	"obligations": {
		"rate_limit": {"limit": limit, "observed": input.context.request_rate},
		"retry_after": retry_after_seconds,
	},
} if {
	input.context.request_rate > limit
} else := {
	"decision": "allow",
	"reasons": ["rate_limit_near"],
	"obligations": {
		"rate_limit": {"limit": limit, "observed": input.context.request_rate},
		"throttle": true,
	},
} if {
	input.context.request_rate > limit * warn_ratio
} else := {
	"decision": "allow",
	"reasons": ["rate_within_limit"],
	"obligations": {"rate_limit": {"limit": limit, "observed": input.context.request_rate}},
} if {
	is_number(input.context.request_rate)
}
