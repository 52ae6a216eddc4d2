# name: Baseline: Resource Constraints
# description: Guard rails on the resource and on who may use it: the resource must be
#   identified and offer scopes; per-resource constraints restrict the subject types,
#   application credential types and application traits; public clients (no credential)
#   may only request read_only_actions. Denies with every violation as a reason.
package caracal.authz

import rego.v1

# Input fields of the wrong type count as absent.
as_array(value) := value if is_array(value)
else := []

as_object(value) := value if is_object(value)
else := {}

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

resource := as_object(object.get(input, "resource", {}))

application := as_object(object.get(input, "application", {}))

constraints := object.get(resource_constraints, object.get(resource, "identifier", ""), {})

traits := {trait | some trait in as_array(object.get(application, "traits", []))}

action(scope) := parts[count(parts) - 1] if {
	is_string(scope)
	parts := split(scope, ":")
}

non_empty_string(value) if {
	is_string(value)
	value != ""
}

violations contains "resource_missing" if not non_empty_string(object.get(resource, "id", null))

violations contains "resource_missing" if not non_empty_string(object.get(resource, "identifier", null))

violations contains "resource_has_no_scopes" if count(as_array(object.get(resource, "scopes", []))) == 0

violations contains "subject_type_not_allowed_for_resource" if {
	allowed := constraints.subject_types
	not object.get(input, ["subject", "type"], null) in allowed
}

violations contains "credential_type_not_allowed_for_resource" if {
	allowed := constraints.credential_types
	not object.get(application, "credential_type", null) in allowed
}

violations contains "application_missing_required_trait" if {
	some trait in constraints.required_traits
	not trait in traits
}

violations contains "public_client_requested_write_scope" if {
	application.credential_type == "public"
	some scope in as_array(object.get(input, "requested_scopes", []))
	not action(scope) in read_only_actions
}

default result := {"decision": "deny", "reasons": ["resource_constraints_not_evaluated"]}

result := {"decision": "deny", "reasons": sort(violations)} if {
	count(violations) > 0
} else := {"decision": "allow", "reasons": ["resource_constraints_met"]}
