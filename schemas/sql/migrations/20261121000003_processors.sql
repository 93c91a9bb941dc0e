-- The processors' batch write is one statement (one round trip, one transaction). Its
-- last step calls this: unless every partition of the batch still had the offset the
-- processor believed, another processor has committed them since (a rebalance or a
-- zombie), and the whole statement is rolled back.
CREATE FUNCTION bazaar_require_offsets(expected bigint, matched bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
    IF matched IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'the stored offsets of % partition(s) moved on; % matched', expected, matched
            USING ERRCODE = 'BZ409';
    END IF;
    RETURN matched;
END;
$$;

-- A duplicate's ledger row names the outcome of the movement it repeats.
ALTER TABLE movements ADD COLUMN original_status text;

