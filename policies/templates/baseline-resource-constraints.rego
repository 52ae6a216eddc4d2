# name: Baseline: Resource Constraints
# description: Guard rails on the resource and on who may use it: the resource must be
#   identified and offer scopes; per-resource constraints restrict the subject types,
#   application credential types and application traits; public clients (no credential)
#   may only request read_only_actions. Denies with every violation as a reason.
package caracal.authz

import rego.v1

# ---- Settings -------------------------------------------------------------------------

# Constraints per resource identifier (resources not listed have none). Keys, all optional:
# subject_types, credential_types (of the application), required_traits (of the application).
resource_constraints := {
	"resource://billing": {
		"subject_types": {"user", "service"},
		"credential_types": {"token", "password", "public-key"},
	},
	"resource://admin-console": {
		"subject_types": {"user"},
		"required_traits": {"first_party"},
	},
}

# The only actions a public client ("credential_type": "public") may request.
read_only_actions := {"read", "list"}

# ---- Input --------------------------------------------------------------------------
# A field of the wrong type counts as absent.

constraints := resource_constraints[input.resource.identifier]

traits := {trait | some trait in input.application.traits} if is_array(input.application.traits)
else := set()

identified if {
	is_string(input.resource.id)
	input.resource.id != ""
	is_string(input.resource.identifier)
	input.resource.identifier != ""
}

has_scopes if {
	is_array(input.resource.scopes)
	count(input.resource.scopes) > 0
}

# ---- Policy -------------------------------------------------------------------------

violations contains "resource_missing" if not identified

violations contains "resource_has_no_scopes" if not has_scopes

# The violations of the resource's own constraints, checked only when it has some (most
# resources have none, and each check regorus visits costs about 3 µs: docs/performance.md).
violations contains violation if {
	constraints
	some violation in constraint_violations
}

# A constraint that lists subject types (or credential types) is met only by a subject (or
# application) that has one of them.
constraint_violations contains "subject_type_not_allowed_for_resource" if {
	allowed := constraints.subject_types
	not subject_type_in(allowed)
}

constraint_violations contains "credential_type_not_allowed_for_resource" if {
	allowed := constraints.credential_types
	not credential_type_in(allowed)
}

constraint_violations contains "application_missing_required_trait" if {
	some trait in constraints.required_traits
	not trait in traits
}

violations contains "public_client_requested_write_scope" if {
	input.application.credential_type == "public"
	is_array(input.requested_scopes)
	some scope in input.requested_scopes
	not read_only(scope)
}

subject_type_in(types) if input.subject.type in types

credential_type_in(types) if input.application.credential_type in types

# A scope whose action (the part after its last ":"; a scope without ":" is its own action)
# is read-only.
read_only(scope) if {
	is_string(scope)
	parts := split(scope, ":")
	parts[count(parts) - 1] in read_only_actions
}

result := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["resource_constraints_met"]}
