-- Transfers between stores: a transfer-out takes stock from its store and puts it in
-- transit; the processors announce it to the destination (a transfer-in on the movements
-- topic, in the same Kafka transaction as the source's outputs); the destination's
-- transfer-receive says what arrived, and the shortfall is a loss in transit.
-- The ledger keeps each transfer movement's transfer id and the other store; `transfers`
-- keeps each transfer's state: written by the source's commit when its transfer-out
-- applies, completed by the destination's when its receive applies.
ALTER TABLE movements
    ADD COLUMN transfer_id uuid,
    ADD COLUMN to_store_id bigint,
    ADD COLUMN from_store_id bigint;

CREATE TABLE transfers (
    transfer_id         uuid PRIMARY KEY,
    -- The order transfers were recorded in (pages of a store's transfers).
    id                  bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    from_store_id       bigint NOT NULL REFERENCES stores (id),
    to_store_id         bigint NOT NULL REFERENCES stores (id),
    product_id          bigint NOT NULL,
    sku                 text NOT NULL,
    quantity_sent       bigint NOT NULL CHECK (quantity_sent > 0),
    sent_at             timestamptz NOT NULL,
    out_movement_id     uuid NOT NULL,
    quantity_received   bigint CHECK (quantity_received BETWEEN 0 AND quantity_sent),
    received_at         timestamptz,
    receive_movement_id uuid,
    -- Why the shortfall (sent less received) was lost; NULL without one.
    loss_reason         text,
    CHECK ((quantity_received IS NULL) = (received_at IS NULL)),
    CHECK (from_store_id <> to_store_id)
);
CREATE INDEX transfers_from_idx ON transfers (from_store_id, id);
CREATE INDEX transfers_to_idx ON transfers (to_store_id, id);
