-- A product's selling price in one store, in paise: a sale sent without `unit_price_paise`
-- is recorded at it (the processors hold it with the store's reorder points), and reports
-- value stock at retail with it. Set by admins and by the store's manager.
ALTER TABLE store_products
    ADD COLUMN selling_price_paise bigint
        CONSTRAINT store_products_selling_price_check CHECK (selling_price_paise >= 0);
