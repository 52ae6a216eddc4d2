-- What POST /v1/local/bootstrap created, so later calls find it again (idempotency).
CREATE TABLE local_bootstrap (
    zone_id        text PRIMARY KEY REFERENCES zones (id),
    application_id uuid NOT NULL,
    resource_id    uuid NOT NULL,
    policy_id      uuid NOT NULL,
    policy_set_id  uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (zone_id, application_id) REFERENCES applications (zone_id, id),
    FOREIGN KEY (zone_id, resource_id) REFERENCES resources (zone_id, id),
    FOREIGN KEY (zone_id, policy_id) REFERENCES policies (zone_id, id),
    FOREIGN KEY (zone_id, policy_set_id) REFERENCES policy_sets (zone_id, id)
);
CREATE TRIGGER local_bootstrap_updated_at BEFORE UPDATE ON local_bootstrap
    FOR EACH ROW EXECUTE FUNCTION caracal_set_updated_at();
