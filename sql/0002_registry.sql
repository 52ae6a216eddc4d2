-- Zone registry: applications (managed and DCR), providers with encrypted secrets, resources,
-- and the per-zone DCR rate limiter. Decisions: docs/registry.md.

-- An application is active while archived_at IS NULL and it has not expired
-- (expires_at IS NULL OR expires_at > now()); an expired DCR application counts as archived.
CREATE TABLE applications (
    zone_id             text NOT NULL REFERENCES zones (id),
    id                  uuid NOT NULL,
    name                text NOT NULL,
    registration_method text NOT NULL CHECK (registration_method IN ('managed', 'dcr')),
    credential_type     text NOT NULL
        CHECK (credential_type IN ('token', 'password', 'public-key', 'url', 'public')),
    client_secret_hash  text CHECK (client_secret_hash LIKE '$argon2id$%'),
    traits              text[] NOT NULL DEFAULT '{}',
    consent             boolean NOT NULL DEFAULT false,
    expires_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    archived_at         timestamptz,
    PRIMARY KEY (zone_id, id)
);
CREATE INDEX applications_active_created ON applications (zone_id, created_at, id)
    WHERE archived_at IS NULL;
CREATE INDEX applications_active_dcr ON applications (zone_id, expires_at)
    WHERE archived_at IS NULL AND registration_method = 'dcr';
CREATE TRIGGER applications_updated_at BEFORE UPDATE ON applications
    FOR EACH ROW EXECUTE FUNCTION caracal_set_updated_at();

-- The applications that exist for every reader (grants, runtime): not archived, not expired.
CREATE VIEW active_applications AS
    SELECT * FROM applications
    WHERE archived_at IS NULL AND (expires_at IS NULL OR expires_at > now());

-- Providers. secrets_enc is the AES-256-GCM encryption (zone DEK, provider id as associated
-- data) of one JSON object {dotted path: value}; secret_config_keys lists its paths, sorted.
CREATE TABLE providers (
    zone_id            text NOT NULL REFERENCES zones (id),
    id                 uuid NOT NULL,
    name               text NOT NULL,
    identifier         text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('oauth2', 'oidc', 'apikey', 'workload')),
    owner_type         text NOT NULL DEFAULT 'customer',
    config_json        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config_json) = 'object'),
    secret_config_keys text[] NOT NULL DEFAULT '{}',
    secrets_enc        bytea,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    archived_at        timestamptz,
    PRIMARY KEY (zone_id, id),
    CHECK ((secrets_enc IS NULL) = (cardinality(secret_config_keys) = 0))
);
CREATE UNIQUE INDEX providers_active_identifier ON providers (zone_id, identifier)
    WHERE archived_at IS NULL;
CREATE INDEX providers_active_created ON providers (zone_id, created_at, id)
    WHERE archived_at IS NULL;
CREATE TRIGGER providers_updated_at BEFORE UPDATE ON providers
    FOR EACH ROW EXECUTE FUNCTION caracal_set_updated_at();

CREATE TABLE resources (
    zone_id                text NOT NULL REFERENCES zones (id),
    id                     uuid NOT NULL,
    name                   text NOT NULL,
    identifier             text NOT NULL,
    upstream_url           text,
    prefix                 boolean NOT NULL DEFAULT false,
    scopes                 text[] NOT NULL CHECK (cardinality(scopes) >= 1),
    credential_provider_id uuid,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    archived_at            timestamptz,
    PRIMARY KEY (zone_id, id),
    FOREIGN KEY (zone_id, credential_provider_id) REFERENCES providers (zone_id, id)
);
CREATE UNIQUE INDEX resources_active_identifier ON resources (zone_id, identifier)
    WHERE archived_at IS NULL;
CREATE INDEX resources_active_created ON resources (zone_id, created_at, id)
    WHERE archived_at IS NULL;
CREATE INDEX resources_active_provider ON resources (zone_id, credential_provider_id)
    WHERE archived_at IS NULL AND credential_provider_id IS NOT NULL;
CREATE TRIGGER resources_updated_at BEFORE UPDATE ON resources
    FOR EACH ROW EXECUTE FUNCTION caracal_set_updated_at();

-- DCR rate limiter: per zone, the times of the accepted requests of the last window (a
-- sliding log of at most p_limit entries). One row per zone, locked while it is consulted,
-- so every process and replica shares one count.
CREATE TABLE dcr_rate_limits (
    zone_id text PRIMARY KEY REFERENCES zones (id),
    recent  timestamptz[] NOT NULL DEFAULT '{}'
);

-- True (and the request recorded) when fewer than p_limit requests were accepted in the
-- p_window before now; false otherwise. Uses the database clock, read after the row lock.
CREATE FUNCTION caracal_dcr_rate_take(p_zone text, p_limit integer, p_window interval)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    kept timestamptz[];
    at   timestamptz;
BEGIN
    INSERT INTO dcr_rate_limits (zone_id) VALUES (p_zone) ON CONFLICT (zone_id) DO NOTHING;
    SELECT recent INTO kept FROM dcr_rate_limits WHERE zone_id = p_zone FOR UPDATE;
    at := clock_timestamp();
    kept := ARRAY(SELECT t FROM unnest(kept) AS t WHERE t > at - p_window ORDER BY t);
    IF cardinality(kept) >= p_limit THEN
        UPDATE dcr_rate_limits SET recent = kept WHERE zone_id = p_zone;
        RETURN false;
    END IF;
    UPDATE dcr_rate_limits SET recent = kept || at WHERE zone_id = p_zone;
    RETURN true;
END $$;
