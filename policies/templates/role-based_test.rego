package caracal.authz_test

import rego.v1

import data.caracal.authz

base := {
	"subject": {"id": "user-1", "type": "user", "roles": ["viewer"], "attributes": {}},
	"application": {"id": "app-1", "name": "Portal", "credential_type": "token", "traits": []},
	"resource": {
		"id": "res-1",
		"identifier": "resource://orders",
		"scopes": ["orders:read", "orders:write", "orders:delete"],
	},
	"requested_scopes": ["orders:read"],
}

with_roles(roles, scopes) := object.union(base, {
	"subject": object.union(base.subject, {"roles": roles}),
	"requested_scopes": scopes,
})

test_viewer_reads if {
	r := authz.result with input as with_roles(["viewer"], ["orders:read"])
	r.decision == "allow"
	r.reasons == ["roles_allow_requested_scopes"]
}

test_viewer_cannot_write if {
	r := authz.result with input as with_roles(["viewer"], ["orders:write"])
	r.decision == "deny"
	r.reasons == ["roles_allow_no_requested_scope"]
}

test_viewer_asking_read_and_write_gets_partial_read if {
	r := authz.result with input as with_roles(["viewer"], ["orders:read", "orders:write"])
	r.decision == "partial"
	r.granted_scopes == ["orders:read"]
}

test_editor_reads_and_writes if {
	r := authz.result with input as with_roles(["editor"], ["orders:read", "orders:write"])
	r.decision == "allow"
}

test_roles_combine if {
	r := authz.result with input as with_roles(["viewer", "auditor"], ["audit:export", "orders:read"])
	r.decision == "allow"
}

test_admin_gets_any_scope_the_resource_offers if {
	r := authz.result with input as with_roles(["admin"], ["orders:delete", "orders:write"])
	r.decision == "allow"
}

test_admin_wildcard_does_not_cover_scopes_the_resource_lacks if {
	r := authz.result with input as with_roles(["admin"], ["billing:refund"])
	r.decision == "deny"
}

test_unknown_role_is_denied if {
	r := authz.result with input as with_roles(["intern"], ["orders:read"])
	r.decision == "deny"
	r.reasons == ["subject_has_no_known_role"]
}

test_missing_roles_is_denied if {
	r := authz.result with input as object.remove(base, ["subject"])
	r.decision == "deny"
	r.reasons == ["subject_has_no_known_role"]
}

test_no_scopes_requested_is_denied if {
	r := authz.result with input as with_roles(["editor"], [])
	r.decision == "deny"
	r.reasons == ["no_scopes_requested"]
}

test_action_is_the_part_after_the_last_colon if {
	r := authz.result with input as with_roles(["auditor"], ["audit:export", "x:audit:export", "a:b:read"])
	r.decision == "partial"
	r.granted_scopes == ["audit:export", "a:b:read"]
}

test_partial_keeps_requested_order_and_repeats if {
	r := authz.result with input as with_roles(["viewer"], ["orders:read", "orders:write", "orders:read"])
	r.granted_scopes == ["orders:read", "orders:read"]
}

test_wrong_typed_fields_count_as_absent if {
	r1 := authz.result with input as object.union(base, {"requested_scopes": "orders:read"})
	r1.reasons == ["no_scopes_requested"]
	r2 := authz.result with input as with_roles({"a": "viewer"}, ["orders:read"])
	r2.reasons == ["subject_has_no_known_role"]
	r3 := authz.result with input as with_roles({"viewer"}, ["orders:read"])
	r3.reasons == ["subject_has_no_known_role"]
	r4 := authz.result with input as with_roles(["viewer"], {"orders:read"})
	r4.reasons == ["no_scopes_requested"]
	r5 := authz.result with input as "not an object"
	r5.reasons == ["no_scopes_requested"]
}

test_non_string_scopes_only_through_the_wildcard if {
	r1 := authz.result with input as with_roles(["viewer"], [1, "orders:read"])
	r1.granted_scopes == ["orders:read"]
	r2 := authz.result with input as object.union(with_roles(["admin"], [1, "orders:read"]), {"resource": {"scopes": [1]}})
	r2.granted_scopes == [1]
}
