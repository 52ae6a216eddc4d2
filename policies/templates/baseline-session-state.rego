# name: Baseline: Session State
# description: Requires a live session: present, not expired, authenticated at most
#   max_authentication_age ago (and not in the future), owned by the subject unless it is a
#   delegated session, and a delegated session must name its parent. The clock is
#   input.context.time when given, else the engine's clock. An authentication time that is
#   present but unreadable is a violation too. Denies with every violation.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

settings := {
	# How long an authentication stays good, in seconds (12 hours).
	"max_authentication_age": 43200,
	# How far in the future an authentication time may lie, in seconds (clocks differ).
	"clock_skew": 300,
}

# ---- Input --------------------------------------------------------------------------

# The evaluation time: input.context.time (RFC 3339) when given, else the engine's clock.
now := time.parse_rfc3339_ns(input.context.time) if is_string(input.context.time)
else := time.now_ns()

# The session's times that are readable, in nanoseconds since the epoch.
session_times := {field: time.parse_rfc3339_ns(value) |
	some field in ["expires_at", "authenticated_at"]
	value := input.session[field]
	is_string(value)
	value != ""
}

# A delegated session belongs to the user who delegated, not to the acting subject.
delegated if input.session.type == "delegated"

delegated if has_parent

has_parent if {
	is_string(input.session.parent_id)
	input.session.parent_id != ""
}

# ---- Policy -------------------------------------------------------------------------

violations contains "session_expiry_missing" if not session_times.expires_at

violations contains "session_expired" if session_times.expires_at <= now

# The authentication time must lie at most max_authentication_age before now and at most
# clock_skew after it: each limit with the reason it gives when broken.
violations contains reason if {
	# How long ago the session was authenticated, in nanoseconds (negative: in the future);
	# the limits are in seconds.
	age := now - session_times.authenticated_at
	some reason, broken in {
		"authentication_too_old": age > settings.max_authentication_age * 1000000000,
		"authentication_in_future": 0 - age > settings.clock_skew * 1000000000,
	}
	broken
}

# An authentication time that is present but unreadable must not pass unchecked.
violations contains "authentication_time_invalid" if {
	not session_times.authenticated_at
	input.session.authenticated_at != null
}

violations contains "session_subject_mismatch" if {
	input.session.subject_id != input.subject.id
	not delegated
}

violations contains "delegated_session_without_parent" if {
	input.session.type == "delegated"
	not has_parent
}

# A session is an object (any other value counts as no session). A request without one is
# denied for that alone: the violations are gathered only when there is a session. The
# allowed case comes first so that it evaluates the fewest rules, and no test is negated
# (OPA leaves `not is_object(input.session)` undefined when the session is missing).
result := {"decision": "allow", "reasons": ["session_active"]} if {
	is_object(input.session)
	violations == set()
} else := {"decision": "deny", "reasons": sort(violations)} if {
	is_object(input.session)
} else := {"decision": "deny", "reasons": ["session_missing"]}
