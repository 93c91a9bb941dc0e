-- An idempotency key means what it says: a movement id names one movement of one store.
-- The first outcome keeps the fingerprint of what that movement was
-- (StockMovement::fingerprint); a later movement with the same id is a duplicate only if
-- it is of the same store with the same fingerprint, otherwise a conflict. Rows recorded
-- before this migration have no fingerprint: a resend of those is taken as a duplicate.
ALTER TABLE movement_ids ADD COLUMN fingerprint bigint;

ALTER TABLE movements DROP CONSTRAINT movements_status_check,
    ADD CONSTRAINT movements_status_check CHECK (status IN ('applied', 'rejected', 'duplicate', 'conflict'));

-- Later rows of a movement id (duplicates and conflicts) are found through this index.
DROP INDEX movements_duplicate_id_idx;
CREATE INDEX movements_repeated_id_idx ON movements (movement_id) WHERE status IN ('duplicate', 'conflict');
