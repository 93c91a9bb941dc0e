-- Daily rollup of the stock that changed other than by sales and stock-ins, for the
-- shrinkage and returns reports: removals, adjustments down and up, and customer returns
-- restocked or written off (not resellable), each by reason (none for a restocked return),
-- with the units' value at the moving-average cost when they were applied (units whose cost
-- was unknown are counted apart). `day` is the local date in the store's timezone.
CREATE TABLE stock_changes_daily (
    store_id           bigint NOT NULL,
    day                date NOT NULL,
    change             text NOT NULL CONSTRAINT stock_changes_daily_change_check CHECK (change IN
                           ('removal', 'adjustment_down', 'adjustment_up', 'return_restocked',
                            'return_written_off')),
    reason             text,
    product_id         bigint NOT NULL,
    units              bigint NOT NULL DEFAULT 0,
    value_paise        numeric NOT NULL DEFAULT 0,
    units_without_cost bigint NOT NULL DEFAULT 0,
    movements          bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX stock_changes_daily_key
    ON stock_changes_daily (store_id, day, change, reason, product_id) NULLS NOT DISTINCT;

-- Removals applied before this rollup: their units, at a cost the ledger did not keep.
INSERT INTO stock_changes_daily (store_id, day, change, reason, product_id, units,
    units_without_cost, movements)
SELECT m.store_id, (m.occurred_at AT TIME ZONE s.timezone)::date, 'removal', m.reason,
       m.product_id, sum(m.quantity), sum(m.quantity), count(*)
  FROM movements m JOIN stores s ON s.id = m.store_id
 WHERE m.kind = 'removal' AND m.status = 'applied'
 GROUP BY 1, 2, 4, 5;
