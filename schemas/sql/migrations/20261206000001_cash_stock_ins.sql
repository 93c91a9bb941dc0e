-- Stock-ins without a supplier (cash purchases: the wholesale market, a shop next door) and
-- without a cost. In the sourcing rollup a NULL supplier is a group of its own, and units
-- whose cost is unknown are counted apart from `cost_paise`, which covers the others only.
ALTER TABLE supplier_daily DROP CONSTRAINT supplier_daily_pkey;
ALTER TABLE supplier_daily ALTER COLUMN supplier_id DROP NOT NULL;
ALTER TABLE supplier_daily ADD COLUMN units_uncosted bigint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX supplier_daily_key
    ON supplier_daily (store_id, day, supplier_id, product_id) NULLS NOT DISTINCT;
