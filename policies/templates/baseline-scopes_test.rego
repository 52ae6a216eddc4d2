package caracal.authz_test

import rego.v1

import data.caracal.authz

request(scopes) := {
	"resource": {"id": "res-1", "identifier": "resource://files", "scopes": ["files:read", "files:write"]},
	"requested_scopes": scopes,
}

test_offered_scopes_are_allowed if {
	r := authz.result with input as request(["files:read", "files:write"])
	r.decision == "allow"
	r.reasons == ["scopes_offered_by_resource"]
}

test_unoffered_scopes_are_dropped if {
	r := authz.result with input as request(["files:read", "files:share"])
	r.decision == "partial"
	r.granted_scopes == ["files:read"]
	r.reasons == ["some_scopes_not_offered_by_resource"]
}

test_only_unoffered_scopes_is_denied if {
	r := authz.result with input as request(["files:share"])
	r.decision == "deny"
	r.reasons == ["scopes_not_offered_by_resource"]
}

test_empty_request_is_denied if {
	r := authz.result with input as request([])
	r.reasons == ["no_scopes_requested"]
}

test_missing_request_is_denied if {
	r := authz.result with input as {"resource": {"scopes": ["files:read"]}}
	r.reasons == ["no_scopes_requested"]
}

test_malformed_scope_is_denied if {
	every scope in ["Files:Read", "files read", "", 42] {
		r := authz.result with input as request(["files:read", scope])
		r.reasons == ["malformed_scope"]
	}
}

test_too_many_scopes_is_denied if {
	r := authz.result with input as request([sprintf("files:s%d", [i]) | some i in numbers.range(1, 65)])
	r.reasons == ["too_many_scopes"]
}

test_resource_without_scopes_offers_nothing if {
	r := authz.result with input as {"resource": {"id": "res-1"}, "requested_scopes": ["files:read"]}
	r.decision == "deny"
}

test_scope_length_limit if {
	long := concat("", ["files:", concat("", ["a" | some _ in numbers.range(1, 194)])])
	count(long) == 200
	r := authz.result with input as {"resource": {"scopes": [long]}, "requested_scopes": [long]}
	r.decision == "allow"
	too_long := concat("", [long, "b"])
	r2 := authz.result with input as {"resource": {"scopes": [too_long]}, "requested_scopes": [too_long]}
	r2.reasons == ["malformed_scope"]
}
