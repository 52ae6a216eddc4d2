-- Grants, runtime sessions and step-up challenges (issue 6).

-- A grant binds an application to a resource with scopes for one user. Its status is derived:
-- 'revoked' once revoked_at is set, else 'active'. Grants are immutable except for that one
-- transition (trigger below).
CREATE TABLE grants (
    zone_id        text NOT NULL REFERENCES zones (id),
    id             uuid NOT NULL,
    application_id uuid NOT NULL,
    user_id        text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 512),
    resource_id    uuid NOT NULL,
    scopes         text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 64),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    PRIMARY KEY (zone_id, id),
    FOREIGN KEY (zone_id, application_id) REFERENCES applications (zone_id, id),
    FOREIGN KEY (zone_id, resource_id) REFERENCES resources (zone_id, id)
);
CREATE INDEX grants_zone_created ON grants (zone_id, created_at DESC, id DESC);
CREATE INDEX grants_zone_user ON grants (zone_id, user_id, created_at DESC, id DESC);
CREATE INDEX grants_zone_application
    ON grants (zone_id, application_id, created_at DESC, id DESC);
CREATE INDEX grants_zone_resource ON grants (zone_id, resource_id, created_at DESC, id DESC);

CREATE FUNCTION caracal_grants_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (NEW.zone_id, NEW.id, NEW.application_id, NEW.user_id, NEW.resource_id, NEW.scopes,
           NEW.created_at)
          IS DISTINCT FROM (OLD.zone_id, OLD.id, OLD.application_id, OLD.user_id,
                            OLD.resource_id, OLD.scopes, OLD.created_at) THEN
        RAISE EXCEPTION 'grants are immutable except for being revoked once'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grants_revoke_only BEFORE UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION caracal_grants_revoke_only();
CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_change();

-- Sessions are recorded by the decision API (first decision for an unknown session id) and
-- revoked by grant revocation. Ids are the caller's opaque strings. Status is derived at read
-- time: 'revoked' when revoked_at is set, else 'expired' when expires_at <= now(), else
-- 'active'.
CREATE TABLE sessions (
    zone_id          text NOT NULL REFERENCES zones (id),
    id               text NOT NULL CHECK (length(id) BETWEEN 1 AND 512),
    session_type     text NOT NULL CHECK (length(session_type) BETWEEN 1 AND 64),
    subject_id       text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 512),
    parent_id        text CHECK (length(parent_id) BETWEEN 1 AND 512),
    expires_at       timestamptz NOT NULL,
    authenticated_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    PRIMARY KEY (zone_id, id)
);
CREATE INDEX sessions_zone_created ON sessions (zone_id, created_at DESC, id DESC);
CREATE INDEX sessions_zone_subject ON sessions (zone_id, subject_id, created_at DESC, id DESC);

-- Step-up challenges are created by the decision API for a session and satisfied through
-- the admin API (satisfied_at is set once).
CREATE TABLE step_up_challenges (
    zone_id        text NOT NULL REFERENCES zones (id),
    id             uuid NOT NULL,
    session_id     text NOT NULL,
    challenge_type text NOT NULL CHECK (length(challenge_type) BETWEEN 1 AND 64),
    metadata_json  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    satisfied_at   timestamptz,
    PRIMARY KEY (zone_id, id),
    FOREIGN KEY (zone_id, session_id) REFERENCES sessions (zone_id, id)
);
CREATE INDEX step_up_challenges_session
    ON step_up_challenges (zone_id, session_id, expires_at DESC);
CREATE INDEX step_up_challenges_zone_created
    ON step_up_challenges (zone_id, created_at DESC, id DESC);
