-- Sales per store and local day, every product together: the rollup a store's sales report
-- by day reads (one row per day instead of one per day and product). The processors
-- maintain it in the same statement as sales_daily; this fills it from what exists.
CREATE TABLE sales_daily_store (
    store_id            bigint NOT NULL,
    day                 date NOT NULL,
    units_sold          bigint NOT NULL DEFAULT 0,
    revenue_paise       bigint NOT NULL DEFAULT 0,
    cost_of_goods_paise bigint NOT NULL DEFAULT 0,
    sale_count          bigint NOT NULL DEFAULT 0,
    units_removed       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, day)
);

INSERT INTO sales_daily_store (store_id, day, units_sold, revenue_paise, cost_of_goods_paise,
    sale_count, units_removed)
SELECT store_id, day, sum(units_sold), sum(revenue_paise), sum(cost_of_goods_paise),
    sum(sale_count), sum(units_removed)
FROM sales_daily
GROUP BY store_id, day;
