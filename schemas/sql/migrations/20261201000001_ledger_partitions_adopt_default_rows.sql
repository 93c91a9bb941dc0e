-- Ledger partitions are kept ahead while the services run (see schemas::migrations), and a
-- month that got rows into the default partition (a deployment that outran its partitions,
-- a record stamped far ahead) no longer stops everything: creating that month's partition
-- failed while the default held rows of its range, and every start-up tried.
--
-- Now the month's table is made on its own, the default partition's rows of that range are
-- moved into it, and it is attached — one transaction. Months that have rows in the default
-- partition are adopted the same way, whatever the clock says.
CREATE OR REPLACE FUNCTION bazaar_ensure_movement_partitions(from_time timestamptz, months_ahead integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    month_start date;
    months date[];
BEGIN
    -- Serialise concurrent callers: CREATE TABLE IF NOT EXISTS alone can still race.
    PERFORM pg_advisory_xact_lock(hashtext('bazaar_ensure_movement_partitions'));
    SELECT array_agg(DISTINCT date_trunc('month', recorded_at AT TIME ZONE 'UTC')::date)
      INTO months FROM movements_default;
    FOR step IN 0..months_ahead LOOP
        months := array_append(months,
            (date_trunc('month', from_time AT TIME ZONE 'UTC') + make_interval(months => step))::date);
    END LOOP;
    FOREACH month_start IN ARRAY months LOOP
        PERFORM bazaar_create_movement_partition(month_start);
    END LOOP;
END;
$$;

CREATE FUNCTION bazaar_create_movement_partition(month_start date)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    partition_name text := format('movements_%s', to_char(month_start, 'YYYY_MM'));
    low timestamptz := month_start::timestamp AT TIME ZONE 'UTC';
    high timestamptz := (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE movements INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        partition_name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM movements_default WHERE recorded_at >= %L AND recorded_at < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved', low, high, partition_name);
    EXECUTE format('ALTER TABLE movements ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, low, high);
END;
$$;
