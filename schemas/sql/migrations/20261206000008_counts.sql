-- Counts: "at occurred_at the shelf held quantity". The balance becomes that as of the
-- count's time; movements that occurred later stay applied on top; one that occurred before
-- the product's latest count but arrives after it is rejected (superseded_by_count).
-- Every applied ledger row keeps what it changed in sellable stock (`delta`: a count's is
-- its variance), from which a later count computes the book as of its own time; a
-- balance keeps the time of its latest count. Count variances join the stock-changes
-- rollup (reason 'count'); a store's counts are read by time through their own index.
ALTER TABLE movements ADD COLUMN delta bigint, ADD COLUMN count_id uuid;
ALTER TABLE balances ADD COLUMN counted_at timestamptz;
ALTER TABLE stock_changes_daily DROP CONSTRAINT stock_changes_daily_change_check;
ALTER TABLE stock_changes_daily ADD CONSTRAINT stock_changes_daily_change_check CHECK (change IN
    ('removal', 'adjustment_down', 'adjustment_up', 'return_restocked', 'return_written_off',
     'count_down', 'count_up'));
CREATE INDEX movements_counts_idx ON movements (store_id, occurred_at) WHERE kind = 'count';
