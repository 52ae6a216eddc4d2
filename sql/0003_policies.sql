-- Policies and their immutable versions, policy sets and their immutable versions (manifests),
-- the zone's active/shadow set version, and the transactional outbox.

CREATE TABLE policies (
    zone_id     text NOT NULL REFERENCES zones (id),
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text,
    owner_type  text NOT NULL DEFAULT 'customer',
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz,
    PRIMARY KEY (zone_id, id)
);
CREATE INDEX policies_active_created ON policies (zone_id, created_at, id)
    WHERE archived_at IS NULL;

-- content_sha256 is the hex SHA-256 of the UTF-8 content; the CHECK keeps it honest.
CREATE TABLE policy_versions (
    zone_id        text NOT NULL,
    id             uuid NOT NULL,
    policy_id      uuid NOT NULL,
    version        integer NOT NULL CHECK (version >= 1),
    content        text NOT NULL,
    content_sha256 text NOT NULL
        CHECK (content_sha256 = encode(sha256(convert_to(content, 'UTF8')), 'hex')),
    schema_version text NOT NULL,
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, id),
    UNIQUE (zone_id, policy_id, version),
    FOREIGN KEY (zone_id, policy_id) REFERENCES policies (zone_id, id)
);
CREATE TRIGGER policy_versions_immutable BEFORE UPDATE OR DELETE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_change();

CREATE TABLE policy_sets (
    zone_id     text NOT NULL REFERENCES zones (id),
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz,
    PRIMARY KEY (zone_id, id)
);
CREATE INDEX policy_sets_active_created ON policy_sets (zone_id, created_at, id)
    WHERE archived_at IS NULL;

-- manifest_sha256: see docs/policies.md (sha256 over "<policy_version_id> <content_sha256>\n"
-- lines in manifest order).
CREATE TABLE policy_set_versions (
    zone_id         text NOT NULL,
    id              uuid NOT NULL,
    policy_set_id   uuid NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    manifest_sha256 text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    schema_version  text NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, id),
    UNIQUE (zone_id, policy_set_id, version),
    FOREIGN KEY (zone_id, policy_set_id) REFERENCES policy_sets (zone_id, id)
);
CREATE TRIGGER policy_set_versions_immutable BEFORE UPDATE OR DELETE ON policy_set_versions
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_change();

-- The manifest of a set version: its policy versions in order (position 0, 1, …).
CREATE TABLE policy_set_version_entries (
    zone_id               text NOT NULL,
    policy_set_version_id uuid NOT NULL,
    position              integer NOT NULL CHECK (position >= 0 AND position < 256),
    policy_version_id     uuid NOT NULL,
    PRIMARY KEY (zone_id, policy_set_version_id, position),
    UNIQUE (zone_id, policy_set_version_id, policy_version_id),
    FOREIGN KEY (zone_id, policy_set_version_id) REFERENCES policy_set_versions (zone_id, id),
    FOREIGN KEY (zone_id, policy_version_id) REFERENCES policy_versions (zone_id, id)
);
CREATE INDEX policy_set_version_entries_policy_version
    ON policy_set_version_entries (zone_id, policy_version_id);
CREATE TRIGGER policy_set_version_entries_immutable
    BEFORE UPDATE OR DELETE ON policy_set_version_entries
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_change();

-- One row per zone: the single active set version and the optional shadow. Activation
-- upserts this row (row lock), so concurrent activations serialise and a zone never has two
-- active versions. generation grows by one on every activation; PDPs compare it.
CREATE TABLE zone_policy_state (
    zone_id           text PRIMARY KEY REFERENCES zones (id),
    active_version_id uuid NOT NULL,
    shadow_version_id uuid,
    generation        bigint NOT NULL DEFAULT 1,
    activated_by      text,
    activated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (zone_id, active_version_id) REFERENCES policy_set_versions (zone_id, id),
    FOREIGN KEY (zone_id, shadow_version_id) REFERENCES policy_set_versions (zone_id, id)
);

-- Transactional outbox (docs/outbox.md). A row is written in the transaction of the change
-- it announces; the relay publishes it and sets published_at.
CREATE TABLE outbox (
    zone_id         text NOT NULL REFERENCES zones (id),
    id              uuid NOT NULL,
    topic           text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, id)
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE published_at IS NULL;

-- Wake the relays once per inserting statement (delivered at commit).
CREATE FUNCTION caracal_outbox_wakeup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('caracal_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_wakeup AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION caracal_outbox_wakeup();

-- Tell every process's token cache at once when an admin token is revoked.
CREATE FUNCTION caracal_admin_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('caracal_admin_tokens', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER admin_tokens_revoked AFTER UPDATE OF revoked_at, expires_at ON admin_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION caracal_admin_token_revoked();

-- Tell every process's PDP at once when a zone is archived (it stops answering decisions).
CREATE FUNCTION caracal_zone_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('caracal_zones', NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER zones_archived AFTER UPDATE OF archived_at ON zones
    FOR EACH ROW WHEN (OLD.archived_at IS DISTINCT FROM NEW.archived_at)
    EXECUTE FUNCTION caracal_zone_archived();
