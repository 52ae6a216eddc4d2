# name: Baseline: Session State
# description: Requires a live session: present, not expired, authenticated at most
#   max_authentication_age ago (and not in the future), owned by the subject unless it is a
#   delegated session, and a delegated session must name its parent. The clock is
#   input.context.time when given, else the engine's clock. Denies with every violation.
package caracal.authz

import rego.v1

# One rule gathers the violations: every rule an evaluation visits costs microseconds in the
# engine, so settings and intermediate values are local (an optional value is a list of at
# most one element).
result := decide(violations) if {
	# Settings, in nanoseconds: 12 hours, 5 minutes.
	max_authentication_age_ns := 43200000000000
	clock_skew_ns := 300000000000

	# Input fields of the wrong type count as absent.
	sessions := array.concat([value | value := input.session; is_object(value)], [{}])
	session := sessions[0]

	clocks := array.concat(
		[ns | is_string(input.context.time); ns := time.parse_rfc3339_ns(input.context.time)],
		[time.now_ns()],
	)
	now := clocks[0]
	expires := [ns |
		is_string(session.expires_at)
		session.expires_at != ""
		ns := time.parse_rfc3339_ns(session.expires_at)
	]
	authenticated := [ns |
		is_string(session.authenticated_at)
		ns := time.parse_rfc3339_ns(session.authenticated_at)
	]
	has_parent := [true | is_string(session.parent_id); session.parent_id != ""] != []

	# A delegated session belongs to the user who delegated, not to the acting subject.
	delegated := true in [object.get(session, "type", null) == "delegated", has_parent]

	violations := (((((({"session_missing" | not is_object(input.session)} | {"session_expiry_missing" |
		is_object(input.session)
		expires == []
	}) | {"session_expired" | some ns in expires; ns <= now}) | {"authentication_too_old" |
		some ns in authenticated
		now - ns > max_authentication_age_ns
	}) | {"authentication_in_future" |
		some ns in authenticated
		ns - now > clock_skew_ns
	}) | {"session_subject_mismatch" |
		not delegated
		subject_id := input.subject.id
		session.subject_id != subject_id
	}) | {"delegated_session_without_parent" | session.type == "delegated"; not has_parent})
}

decide(violations) := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["session_active"]}
