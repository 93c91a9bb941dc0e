-- The ledger's index on movement_id cost every movement an insert at a random place in a
-- B-tree as large as the ledger (movement ids are the POS's, usually random UUIDs); once
-- it outgrew memory, the processors' commits read index pages from disk. movement_ids
-- already finds a movement's first outcome (its store and record time lead to the row by
-- movements_store_recorded_idx), so only the rare duplicate rows need an index of their own.
DROP INDEX movements_movement_id_idx;
CREATE INDEX movements_duplicate_id_idx ON movements (movement_id) WHERE status = 'duplicate';
