# name: Baseline: Session State
# description: Requires a live session: present, not expired, authenticated at most
#   max_authentication_age ago (and not in the future), owned by the subject unless it is a
#   delegated session, and a delegated session must name its parent. The clock is
#   input.context.time when given, else the engine's clock. Denies with every violation.
package caracal.authz

import rego.v1

# Nanoseconds: 12 hours, 5 minutes.
max_authentication_age_ns := 43200000000000

clock_skew_ns := 300000000000

# Input fields of the wrong type count as absent.
session := value if {
	value := input.session
	is_object(value)
} else := {}

now := time.parse_rfc3339_ns(input.context.time) if {
	is_string(input.context.time)
} else := time.now_ns()

expires_ns := time.parse_rfc3339_ns(session.expires_at) if {
	is_string(session.expires_at)
	session.expires_at != ""
}

authenticated_ns := time.parse_rfc3339_ns(session.authenticated_at) if {
	is_string(session.authenticated_at)
}

has_parent if {
	is_string(session.parent_id)
	session.parent_id != ""
}

violations contains "session_missing" if not is_object(input.session)

violations contains "session_expiry_missing" if {
	is_object(input.session)
	not expires_ns
}

violations contains "session_expired" if expires_ns <= now

violations contains "authentication_too_old" if now - authenticated_ns > max_authentication_age_ns

violations contains "authentication_in_future" if authenticated_ns - now > clock_skew_ns

# A delegated session belongs to the user who delegated, not to the acting subject.
delegated if session.type == "delegated"

delegated if has_parent

violations contains "session_subject_mismatch" if {
	not delegated
	subject_id := input.subject.id
	session.subject_id != subject_id
}

violations contains "delegated_session_without_parent" if {
	session.type == "delegated"
	not has_parent
}

default result := {"decision": "deny", "reasons": ["session_state_not_evaluated"]}

result := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["session_active"]}
