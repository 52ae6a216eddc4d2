"""OPA fleets (spec/opa-fleet.md): bundles, long polling, decision-log and status ingest."""
