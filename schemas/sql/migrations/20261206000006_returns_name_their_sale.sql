-- A return may name the sale it takes back from (`original_movement_id`), and may not take
-- back more than that sale sold less its earlier returns. A sale's first outcome keeps
-- what a return needs: its product, quantity and the units returned so far (NULL for any
-- other movement, and for sales recorded before this migration: a return naming one of
-- those is rejected `unknown_sale`).
ALTER TABLE movements ADD COLUMN original_movement_id uuid;
ALTER TABLE movement_ids
    ADD COLUMN sold_product_id bigint,
    ADD COLUMN sold_quantity bigint,
    ADD COLUMN returned bigint;
