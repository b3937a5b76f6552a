-- Retention on SQLite (delivery/retention.py): rows older than each table's kept days are deleted
-- in small batches, oldest first, each batch found through an index on the row's time (calls by
-- the event's time, deliveries by creation, attempts by start, receipts by arrival, charges and
-- taps by their day; message ids through their attempt's start).
CREATE INDEX IF NOT EXISTS calls_by_at ON calls (at);
CREATE INDEX IF NOT EXISTS deliveries_by_created ON deliveries (created);
CREATE INDEX IF NOT EXISTS attempts_by_started ON attempts (started);
CREATE INDEX IF NOT EXISTS receipts_by_at ON receipts (at);
CREATE INDEX IF NOT EXISTS charges_by_day ON charges (day);
CREATE INDEX IF NOT EXISTS taps_by_day ON taps (day);
