-- The cards an enterprise's rollups have day rows for, in a range (rows/eventreports.py): the
-- funnel of every card reads them first, then each card along the primary key, so a month's
-- report never walks the enterprise's minute rows. Day rows only: one new entry per card, key
-- and day, and none for a count added to (n is not in it).
CREATE INDEX IF NOT EXISTS event_rollups_days ON event_rollups (enterprise, bucket, card) WHERE grain = 'd';
