-- The event inbox carries its delivery's day (delivery/rows/events.py), so the roller's lookup of
-- each fact's delivery and first attempt names their partition (migration 0014) instead of
-- probing every kept day. A fact written without one (by a worker of the release before this,
-- during a rolling upgrade) has '' and is looked up across the partitions, as before.
ALTER TABLE delivery_event_inbox ADD COLUMN IF NOT EXISTS day TEXT NOT NULL DEFAULT '';
UPDATE delivery_event_inbox i SET day = d.day FROM deliveries d WHERE d.id = i.delivery AND i.day = '';
