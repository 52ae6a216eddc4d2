-- Audit partitions are created ahead by every migration run and, in a running service, every
-- few hours (controlplane/audit_partitions.py). Rows of a month with no partition yet land in
-- the DEFAULT partition; PostgreSQL then refuses to create that month's partition, which made
-- a restart after ~3 months of uptime fail. Now the month's rows are moved out of DEFAULT
-- into the new partition, in the same transaction, before it is attached.

-- Audit rows stay immutable; the only DELETE allowed is that move out of DEFAULT, flagged by a
-- transaction-local setting that only caracal_ensure_audit_partitions sets.
CREATE FUNCTION caracal_forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_events_default'
       AND current_setting('caracal.moving_audit_rows', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

DROP TRIGGER audit_events_immutable ON audit_events;
CREATE TRIGGER audit_events_immutable BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION caracal_forbid_audit_change();

CREATE OR REPLACE FUNCTION caracal_ensure_audit_partitions(months_ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    part_name   text;
    lower_bound timestamptz;
    upper_bound timestamptz;
BEGIN
    FOR i IN -1..months_ahead LOOP
        month_start := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date;
        part_name := 'audit_events_' || to_char(month_start, 'YYYYMM');
        lower_bound := month_start::timestamp AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN to_regclass(part_name) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM audit_events_default
                   WHERE occurred_at >= lower_bound AND occurred_at < upper_bound) THEN
            EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part_name);
            PERFORM set_config('caracal.moving_audit_rows', 'on', true);
            EXECUTE format(
                'WITH moved AS (DELETE FROM audit_events_default'
                ' WHERE occurred_at >= %L AND occurred_at < %L RETURNING *)'
                ' INSERT INTO %I SELECT * FROM moved',
                lower_bound, upper_bound, part_name);
            PERFORM set_config('caracal.moving_audit_rows', 'off', true);
            EXECUTE format(
                'ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                part_name, lower_bound, upper_bound);
        ELSE
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                part_name, lower_bound, upper_bound);
        END IF;
    END LOOP;
END $$;
