-- The event stream's inbox (delivery/events.py): each fact is written here in the same commit as
-- the write it belongs to (a receipt's attempt settled, a tap counted, an attempt submitted), so
-- a fact acknowledged is a fact kept. Every worker's roller claims rows in id order (DELETE ...
-- FOR UPDATE SKIP LOCKED) and moves them into delivery_events and the rollups in one
-- transaction; what the row lacks (the delivery's enterprise, card, variant, its first attempt)
-- is read then.
CREATE TABLE IF NOT EXISTS delivery_event_inbox (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    channel TEXT NOT NULL, vendor TEXT NOT NULL, button TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
