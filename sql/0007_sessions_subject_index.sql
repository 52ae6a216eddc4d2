-- Session ids and subject ids may each be 512 characters of up to 4 UTF-8 bytes: with both in
-- one index entry (plus the zone id) the entry could pass PostgreSQL's ~2.7 kB limit, and a
-- valid first decision would be refused. The subject index drops the id; ties on created_at
-- are ordered by an incremental sort over the few rows that share it.
DROP INDEX sessions_zone_subject;
CREATE INDEX sessions_zone_subject ON sessions (zone_id, subject_id, created_at DESC);
