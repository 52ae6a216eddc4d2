package caracal.authz_test

import rego.v1

import data.caracal.authz

request := {
	"subject": {"id": "user-1", "type": "user"},
	"application": {"id": "app-1", "name": "Portal", "credential_type": "token", "traits": ["first_party"]},
	"resource": {"id": "res-1", "identifier": "resource://billing", "scopes": ["billing:read", "billing:pay"]},
	"requested_scopes": ["billing:pay"],
}

test_constrained_resource_allows_matching_request if {
	r := authz.result with input as request
	r.decision == "allow"
	r.reasons == ["resource_constraints_met"]
}

test_unlisted_resource_has_no_extra_constraints if {
	inp := object.union(request, {
		"subject": {"type": "agent"},
		"resource": {"identifier": "resource://wiki"},
	})
	r := authz.result with input as inp
	r.decision == "allow"
}

test_agent_cannot_use_billing if {
	r := authz.result with input as object.union(request, {"subject": {"type": "agent"}})
	r.decision == "deny"
	r.reasons == ["subject_type_not_allowed_for_resource"]
}

test_url_credential_cannot_use_billing if {
	r := authz.result with input as object.union(request, {"application": {"credential_type": "url"}})
	r.reasons == ["credential_type_not_allowed_for_resource"]
}

test_admin_console_needs_first_party_application if {
	inp := object.union(request, {
		"application": {"traits": []},
		"resource": {"identifier": "resource://admin-console"},
	})
	r := authz.result with input as inp
	r.reasons == ["application_missing_required_trait"]
}

test_public_client_may_read if {
	inp := object.union(request, {
		"application": {"credential_type": "public"},
		"resource": {"identifier": "resource://wiki"},
		"requested_scopes": ["wiki:read"],
	})
	r := authz.result with input as inp
	r.decision == "allow"
}

test_public_client_may_not_write if {
	inp := object.union(request, {
		"application": {"credential_type": "public"},
		"resource": {"identifier": "resource://wiki"},
		"requested_scopes": ["wiki:read", "wiki:edit"],
	})
	r := authz.result with input as inp
	r.reasons == ["public_client_requested_write_scope"]
}

test_missing_resource_is_denied if {
	r := authz.result with input as object.remove(request, ["resource"])
	r.decision == "deny"
	r.reasons == ["resource_has_no_scopes", "resource_missing"]
}

test_resource_without_scopes_is_denied if {
	r := authz.result with input as object.union(request, {"resource": {"scopes": []}})
	r.reasons == ["resource_has_no_scopes"]
}
