-- Foundation: zones and their keys, admin tokens, the partitioned audit log.

CREATE FUNCTION caracal_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE FUNCTION caracal_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

CREATE TABLE zones (
    id              text PRIMARY KEY,
    org_id          text NOT NULL,
    name            text NOT NULL,
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9-]+$'),
    dcr_enabled     boolean NOT NULL DEFAULT false,
    pkce_required   boolean NOT NULL DEFAULT true,
    login_flow      text NOT NULL DEFAULT 'default',
    local_bootstrap boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    archived_at     timestamptz
);
CREATE UNIQUE INDEX zones_active_slug ON zones (slug) WHERE archived_at IS NULL;
CREATE INDEX zones_active_created ON zones (created_at, id) WHERE archived_at IS NULL;
CREATE TRIGGER zones_updated_at BEFORE UPDATE ON zones
    FOR EACH ROW EXECUTE FUNCTION caracal_set_updated_at();

-- The zone's data-encryption key, wrapped by the KEK identified by kek_id.
CREATE TABLE zone_deks (
    zone_id     text PRIMARY KEY REFERENCES zones (id),
    kek_id      text NOT NULL,
    wrapped_dek bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

-- Ed25519 signing keys, private half sealed under the zone DEK. retired_at is set when a
-- newer key replaces it; a retired key stays published until expires_at.
CREATE TABLE zone_signing_keys (
    zone_id        text NOT NULL REFERENCES zones (id),
    kid            text NOT NULL,
    public_key     bytea NOT NULL,
    sealed_private bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    retired_at     timestamptz,
    expires_at     timestamptz,
    PRIMARY KEY (zone_id, kid)
);
CREATE UNIQUE INDEX zone_signing_keys_current ON zone_signing_keys (zone_id)
    WHERE retired_at IS NULL;

CREATE TABLE admin_tokens (
    id           uuid PRIMARY KEY,
    name         text,
    scope        text NOT NULL CHECK (scope IN ('global', 'zone')),
    zone_id      text REFERENCES zones (id),
    token_sha256 text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CHECK ((scope = 'zone') = (zone_id IS NOT NULL))
);
CREATE INDEX admin_tokens_created ON admin_tokens (created_at, id);

-- Audit log, range-partitioned by month. zone_id is NULL only for zone-independent events
-- (admin tokens).
CREATE TABLE audit_events (
    id                            uuid NOT NULL,
    zone_id                       text,
    event_type                    text NOT NULL,
    request_id                    text,
    actor_id                      text,
    decision                      text CHECK (decision IN ('allow', 'deny', 'partial')),
    evaluation_status             text,
    metadata_json                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    policy_set_id                 uuid,
    policy_set_version_id         uuid,
    manifest_sha                  text,
    determining_policies_json     jsonb,
    diagnostics_json              jsonb,
    shadow_decision               text,
    shadow_policy_set_version_id  uuid,
    occurred_at                   timestamptz NOT NULL DEFAULT now(),
    ingested_at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
CREATE INDEX audit_events_zone_time ON audit_events (zone_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_zone_request ON audit_events (zone_id, request_id);
CREATE INDEX audit_events_zone_type_time
    ON audit_events (zone_id, event_type, occurred_at DESC, id DESC);
CREATE INDEX audit_events_zone_decision_time
    ON audit_events (zone_id, decision, occurred_at DESC, id DESC) WHERE decision IS NOT NULL;
CREATE TRIGGER audit_events_immutable BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_change();

-- Monthly partitions from last month to months_ahead months ahead (idempotent).
CREATE FUNCTION caracal_ensure_audit_partitions(months_ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    part_name   text;
BEGIN
    FOR i IN -1..months_ahead LOOP
        month_start := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date;
        part_name := 'audit_events_' || to_char(month_start, 'YYYYMM');
        IF to_regclass(part_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                part_name,
                month_start::timestamp AT TIME ZONE 'UTC',
                (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END $$;
