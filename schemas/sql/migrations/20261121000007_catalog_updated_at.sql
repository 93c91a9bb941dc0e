-- ingest's catalog cache and query-api's catalog view read the rows changed since their
-- last look, four times a second. Without an index on updated_at each look read the whole
-- table — with a reorder point for every store × product, a million store_products rows
-- per look, per instance.
CREATE INDEX stores_updated_at_idx ON stores (updated_at);
CREATE INDEX products_updated_at_idx ON products (updated_at);
CREATE INDEX suppliers_updated_at_idx ON suppliers (updated_at);
CREATE INDEX store_products_updated_at_idx ON store_products (updated_at);
