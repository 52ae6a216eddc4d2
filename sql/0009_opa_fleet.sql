-- OPA fleets (docs/opa-fleet.md): pdp-scoped admin tokens, the per-zone ES256 bundle-signing
-- key, the decision-log idempotency keys and the latest status report per OPA instance.

-- A third token scope: "pdp" tokens are bound to one zone, like "zone" tokens.
ALTER TABLE admin_tokens DROP CONSTRAINT admin_tokens_scope_check;
ALTER TABLE admin_tokens DROP CONSTRAINT admin_tokens_check;
ALTER TABLE admin_tokens ADD CONSTRAINT admin_tokens_scope_check
    CHECK (scope IN ('global', 'zone', 'pdp'));
ALTER TABLE admin_tokens ADD CONSTRAINT admin_tokens_zone_bound_check
    CHECK ((scope IN ('zone', 'pdp')) = (zone_id IS NOT NULL));

-- The zone's bundle-signing key (ECDSA P-256, for OPA's ES256 bundle verification). The
-- private half (PKCS#8 DER) is sealed under the zone DEK, bound to zone and kid, so KEK
-- rotation (which rewraps DEKs) carries it along. Created on first use (older zones too).
CREATE TABLE zone_bundle_keys (
    zone_id        text PRIMARY KEY REFERENCES zones (id),
    kid            text NOT NULL,
    public_pem     text NOT NULL,
    sealed_private bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Decision-log idempotency: one row per (zone, OPA decision_id) ever stored. audit_events is
-- partitioned by occurred_at, so a unique index there would have to include the timestamp;
-- this small table is the key instead, written in the same transaction as the audit rows.
CREATE TABLE opa_decision_ids (
    zone_id     text NOT NULL REFERENCES zones (id),
    decision_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (zone_id, decision_id)
);
CREATE INDEX opa_decision_ids_occurred ON opa_decision_ids (occurred_at);

-- The latest status report of each OPA instance (labels.id) of a zone.
CREATE TABLE pdp_instances (
    zone_id                    text NOT NULL REFERENCES zones (id),
    instance_id                text NOT NULL,
    opa_version                text,
    active_revision            text,
    last_successful_activation timestamptz,
    bundle_error               jsonb,
    report_json                jsonb NOT NULL,
    last_seen_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, instance_id)
);
CREATE INDEX pdp_instances_zone_seen ON pdp_instances (zone_id, last_seen_at DESC);
