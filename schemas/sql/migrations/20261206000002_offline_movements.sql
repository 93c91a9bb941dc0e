-- Offline truth: a sale or removal made while its till was offline (or that arrives long
-- after it occurred) is applied whatever the book says, and the ledger says so; when it took
-- more than the book held, a `phantom_stock` alert says the book was wrong.
ALTER TABLE movements ADD COLUMN offline boolean NOT NULL DEFAULT false;
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('low_stock', 'out_of_stock', 'recovered', 'phantom_stock'));
