-- The dashboard's event streams (query-api's GET /v1/stores/{id}/events) send each applied
-- movement's alerts beside its balance: they find them by the movement.
CREATE INDEX alerts_movement_idx ON alerts (store_id, movement_id);
