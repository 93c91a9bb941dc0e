-- A void reverses one applied movement: its stock change and its place in the rollups. The
-- ledger keeps what the reversal needs — the void's target, and each applied movement's
-- average cost after it (a sale's cost of goods, a removal's value) — and a movement's
-- first outcome says whether it was voided. Movements recorded before this migration have
-- no average kept: a void of one reverses its cost of goods and value as unknown (0).
ALTER TABLE movements
    ADD COLUMN voids_movement_id uuid,
    ADD COLUMN average_cost_paise bigint;
ALTER TABLE movement_ids ADD COLUMN voided_by uuid;
