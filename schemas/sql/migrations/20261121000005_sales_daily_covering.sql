-- Sales by product over a range reads one sales_daily row per product and day. Rows of a
-- store are spread over the heap (each day's rows arrive interleaved with every other
-- store's), so a 30-day report touched ~30,000 heap pages. The primary key now carries
-- the figures, so the report is an index-only scan over one store's contiguous entries.
-- (An update of a row is then never HOT; one index entry per changed row is the price.)
ALTER TABLE sales_daily
    DROP CONSTRAINT sales_daily_pkey,
    ADD CONSTRAINT sales_daily_pkey PRIMARY KEY (store_id, day, product_id)
        INCLUDE (units_sold, revenue_paise, cost_of_goods_paise, sale_count, units_removed);
