-- Delegated sessions follow their parent chain (sessions.parent_id): the decision API walks
-- a session's ancestors, and grant revocation revokes the descendants of the sessions it
-- revokes. This index serves the walk down (children of a session); the walk up uses the
-- primary key.
CREATE INDEX sessions_zone_parent ON sessions (zone_id, parent_id) WHERE parent_id IS NOT NULL;
