-- Stock as of any time. A balance is the sum of what its applied ledger rows changed
-- (`delta`), so the balance as of T, as known at T2, is the balance now less what the rows
-- that occurred after T or were recorded after T2 changed. This rollup holds those changes
-- by (UTC) day of occurrence and day of record, so that a past balance reads the days since
-- T (and T2) rolled up, and the ledger's rows of T's and T2's own days only — never the
-- whole history. Kept by the processors in the batch's commit, like the other rollups.

-- What an applied row changed in sellable stock: its `delta`, or for a row from before the
-- ledger kept it (20261206000008), its kind's change.
CREATE FUNCTION movement_delta(kind text, quantity bigint, restock boolean, delta bigint)
    RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN COALESCE(delta, CASE
        WHEN kind IN ('stock_in', 'adjustment') THEN quantity
        WHEN kind = 'return' AND restock IS NOT FALSE THEN quantity
        WHEN kind IN ('sale', 'removal') THEN -quantity
        ELSE 0 END);

CREATE TABLE stock_deltas_daily (
    store_id      bigint NOT NULL,
    product_id    bigint NOT NULL,
    occurred_day  date NOT NULL,
    recorded_day  date NOT NULL,
    -- numeric: a day's changes are summed without a bound of their own.
    delta         numeric NOT NULL,
    PRIMARY KEY (store_id, occurred_day, recorded_day, product_id)
);
CREATE INDEX stock_deltas_daily_recorded_idx ON stock_deltas_daily (store_id, recorded_day);

INSERT INTO stock_deltas_daily (store_id, product_id, occurred_day, recorded_day, delta)
SELECT store_id, product_id, (occurred_at AT TIME ZONE 'UTC')::date,
       (recorded_at AT TIME ZONE 'UTC')::date,
       sum(movement_delta(kind, quantity, restock, delta))
  FROM movements
 WHERE status = 'applied'
 GROUP BY 1, 2, 3, 4;
