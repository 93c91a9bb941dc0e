-- A transfer carries the source's moving-average cost when it was sent: the units join
-- the destination's average at it, and what is lost in transit is valued at it. Transit
-- losses join the stock-changes rollup at the destination (change 'transit_loss', reason
-- 'in_transit'), on the receive's local day.
ALTER TABLE transfers ADD COLUMN unit_cost_paise bigint;
ALTER TABLE stock_changes_daily DROP CONSTRAINT stock_changes_daily_change_check;
ALTER TABLE stock_changes_daily ADD CONSTRAINT stock_changes_daily_change_check CHECK (change IN
    ('removal', 'adjustment_down', 'adjustment_up', 'return_restocked', 'return_written_off',
     'count_down', 'count_up', 'transit_loss'));
