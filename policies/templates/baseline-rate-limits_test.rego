package caracal.authz_test

import rego.v1

import data.caracal.authz

request(subject_type, rate) := {
	"subject": {"id": "s-1", "type": subject_type},
	"context": {"request_rate": rate},
}

test_low_rate_is_allowed if {
	r := authz.result with input as request("user", 10)
	r.decision == "allow"
	r.reasons == ["rate_within_limit"]
	r.obligations == {"rate_limit": {"limit": 600, "observed": 10}}
}

test_rate_at_the_limit_is_allowed if {
	r := authz.result with input as request("user", 600)
	r.decision == "allow"
}

test_rate_over_the_limit_is_denied if {
	r := authz.result with input as request("user", 601)
	r.decision == "deny"
	r.reasons == ["rate_limit_exceeded"]
	r.obligations.retry_after == 60
}

test_agents_have_a_lower_limit if {
	r := authz.result with input as request("agent", 121)
	r.decision == "deny"
}

test_services_have_a_higher_limit if {
	r := authz.result with input as request("service", 2000)
	r.decision == "allow"
}

test_unknown_subject_type_uses_default_limit if {
	r := authz.result with input as request("robot", 301)
	r.decision == "deny"
	r.obligations.rate_limit.limit == 300
}

test_near_the_limit_asks_to_throttle if {
	r := authz.result with input as request("user", 500)
	r.decision == "allow"
	r.reasons == ["rate_limit_near"]
	r.obligations.throttle == true
}

test_missing_rate_is_allowed if {
	r := authz.result with input as {"subject": {"type": "user"}}
	r.decision == "allow"
	r.reasons == ["request_rate_unknown"]
}

test_non_numeric_rate_is_denied if {
	r := authz.result with input as request("user", "fast")
	r.decision == "deny"
	r.reasons == ["request_rate_invalid"]
}
