"""Schemathesis hooks for the fuzz run (loaded through ``SCHEMATHESIS_HOOKS``).

- Bodies are sent the way a JSON client writes them: a whole number as an integer. JSON
  Schema counts ``3600.0`` as an integer, but the service reads bodies strictly (a number
  written with a fraction is not an integer, ``tests/api/test_errors.py``), as its OpenAPI
  document says.
- ``valid_data_accepted`` is Schemathesis's ``positive_data_acceptance`` except for the
  refusals that depend on the service's state or on content no schema can describe, each
  named below by its error code.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

#: Refusals of a schema-valid request that the request alone cannot avoid.
STATE_DEPENDENT = {
    # a cursor this server did not issue (the schema cannot tell one apart)
    (400, "invalid_cursor"): None,
    # a zone slug another active zone has
    (400, "invalid_zone"): None,
    # PATCH of an application with another registration_method than the stored one
    (400, "invalid_body"): "registration_method cannot be changed",
    # Rego source that does not compile or does not meet the policy contract
    (422, "invalid_rego"): None,
    (422, "invalid_policy_contract"): None,
}


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    return value


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """Whole numbers as JSON integers."""
    return _integers(body)


def _state_dependent(status: int, payload: Any) -> bool:
    if not isinstance(payload, dict) or (status, payload.get("error")) not in STATE_DEPENDENT:
        return False
    message = STATE_DEPENDENT[(status, payload["error"])]
    issues = payload.get("issues") or []
    return message is None or any(issue.get("message") == message for issue in issues)


@schemathesis.check
def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, less the state-dependent refusals above."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise
        if _state_dependent(response.status_code, payload):
            return None
        raise
