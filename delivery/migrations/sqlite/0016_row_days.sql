-- The day of a delivery's rows, as PostgreSQL partitions them (its migration 0014): written with
-- each delivery, attempt, message id and inbox fact so that both stores' rows read back the same
-- (delivery/records.py). SQLite is not partitioned and never looks a row up by it; rows written
-- before this have ''.
ALTER TABLE deliveries ADD COLUMN day TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN day TEXT NOT NULL DEFAULT '';
ALTER TABLE message_ids ADD COLUMN day TEXT NOT NULL DEFAULT '';
ALTER TABLE delivery_event_inbox ADD COLUMN day TEXT NOT NULL DEFAULT '';
