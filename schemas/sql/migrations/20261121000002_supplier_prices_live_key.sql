-- A deleted supplier price must not block entering the same price again, so uniqueness
-- of (store, supplier, product, effective date) holds among live rows only.
ALTER TABLE supplier_prices DROP CONSTRAINT supplier_prices_key;
CREATE UNIQUE INDEX supplier_prices_key
    ON supplier_prices (store_id, supplier_id, product_id, effective_from)
    WHERE deleted_at IS NULL;

