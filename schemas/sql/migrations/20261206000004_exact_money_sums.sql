-- Money in the rollups is summed in numeric. One movement's value fits bigint (10⁹ units at
-- 10⁹ paise is 10¹⁸), but ten of them on one product and day do not: as bigint, that day's
-- rollup write failed (`bigint out of range`) and held its partition behind it. Units stay
-- bigint: a rollup row past 9.2 × 10¹⁸ units needs over nine billion movements of the
-- largest legal quantity on one store, day and product. Reports sum both in numeric.
ALTER TABLE sales_daily
    ALTER COLUMN revenue_paise TYPE numeric,
    ALTER COLUMN cost_of_goods_paise TYPE numeric;
ALTER TABLE sales_daily_store
    ALTER COLUMN revenue_paise TYPE numeric,
    ALTER COLUMN cost_of_goods_paise TYPE numeric;
ALTER TABLE supplier_daily
    ALTER COLUMN cost_paise TYPE numeric;
