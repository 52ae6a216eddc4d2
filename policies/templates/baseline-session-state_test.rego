package caracal.authz_test

import rego.v1

import data.caracal.authz

request := {
	"subject": {"id": "user-1", "type": "user"},
	"session": {
		"id": "s-1",
		"subject_id": "user-1",
		"type": "user",
		"parent_id": null,
		"expires_at": "2026-03-16T12:00:00Z",
		"authenticated_at": "2026-03-16T09:00:00Z",
		"step_up_satisfied": false,
	},
	"context": {"time": "2026-03-16T10:00:00Z"},
}

with_session(fields) := object.union(request, {"session": fields})

test_live_session_is_allowed if {
	r := authz.result with input as request
	r.decision == "allow"
	r.reasons == ["session_active"]
}

test_missing_session_is_denied if {
	r := authz.result with input as object.remove(request, ["session"])
	r.decision == "deny"
	r.reasons == ["session_missing"]
}

test_null_session_is_denied if {
	r := authz.result with input as object.union(request, {"session": null})
	r.reasons == ["session_missing"]
}

test_expired_session_is_denied if {
	r := authz.result with input as with_session({"expires_at": "2026-03-16T10:00:00Z"})
	r.decision == "deny"
	r.reasons == ["session_expired"]
}

test_session_without_expiry_is_denied if {
	session := object.remove(request.session, ["expires_at"])
	r := authz.result with input as object.union(object.remove(request, ["session"]), {"session": session})
	r.reasons == ["session_expiry_missing"]
}

test_old_authentication_is_denied if {
	r := authz.result with input as with_session({"authenticated_at": "2026-03-15T21:59:59Z"})
	r.reasons == ["authentication_too_old"]
}

test_authentication_in_future_is_denied if {
	r := authz.result with input as with_session({"authenticated_at": "2026-03-16T10:06:00Z"})
	r.reasons == ["authentication_in_future"]
}

test_small_clock_skew_is_tolerated if {
	r := authz.result with input as with_session({"authenticated_at": "2026-03-16T10:04:00Z"})
	r.decision == "allow"
}

test_session_of_another_subject_is_denied if {
	r := authz.result with input as with_session({"subject_id": "user-2"})
	r.reasons == ["session_subject_mismatch"]
}

test_delegated_session_may_belong_to_the_user if {
	inp := object.union(request, {
		"subject": {"id": "agent-1", "type": "agent"},
		"session": {"type": "delegated", "parent_id": "s-0"},
	})
	r := authz.result with input as inp
	r.decision == "allow"
}

test_delegated_session_needs_parent if {
	inp := object.union(request, {
		"subject": {"id": "agent-1", "type": "agent"},
		"session": {"type": "delegated"},
	})
	r := authz.result with input as inp
	r.reasons == ["delegated_session_without_parent"]
}

test_defaults_to_the_engine_clock if {
	inp := object.union(object.remove(request, ["context"]), {"session": {
		"expires_at": "2000-01-01T00:00:00Z",
		"authenticated_at": "1999-12-31T23:00:00Z",
	}})
	r := authz.result with input as inp
	r.reasons == ["authentication_too_old", "session_expired"]
}

test_unreadable_authentication_time_is_denied if {
	r := authz.result with input as with_session({"authenticated_at": 5})
	r.decision == "deny"
	r.reasons == ["authentication_time_invalid"]
}
