-- The ledger is the outbox of the output topics: after a crash, a failed transaction or a
-- rebalance, the processors publish again the rows of a partition from the position the
-- topics have up to the one Postgres has, found through this index (in offset order).
CREATE INDEX movements_source_idx ON movements (source_partition, source_offset);

-- How far the output topics had been published when a batch committed (a lower bound:
-- Kafka's transactional offset commit of the group is the exact figure). Used when the
-- group's offsets are gone from Kafka (expired, or a new cluster). Rows from before the
-- outbox have none: that version published before committing, so up to next_offset.
ALTER TABLE processor_offsets ADD COLUMN published_offset bigint;
