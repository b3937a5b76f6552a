-- The chains still running, and which worker holds each, in a small table of their own: a row is
-- written with its delivery and deleted when the delivery finishes. Leases are claimed, renewed
-- and released here, so the large `deliveries` table no longer carries an index on the active
-- rows' leases, and its index by person names the creation time (which never changes) instead of
-- the last update: no index of `deliveries` covers a column that changes after the insert, so
-- PostgreSQL updates a delivery in place (a HOT update: no new index entries), for which each page
-- keeps a fifth of its room free.
CREATE TABLE IF NOT EXISTS active_chains (delivery TEXT PRIMARY KEY, owner TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS active_chains_by_lease ON active_chains (lease_until);
INSERT INTO active_chains (delivery, owner, lease_until)
    SELECT id, owner, lease_until FROM deliveries WHERE state = 'active' ON CONFLICT DO NOTHING;
DROP INDEX IF EXISTS deliveries_active;
DROP INDEX IF EXISTS deliveries_by_person;
CREATE INDEX IF NOT EXISTS deliveries_by_person ON deliveries (recipient, enterprise, created);
ALTER TABLE deliveries SET (fillfactor = 80);
-- `deliveries.owner` and `lease_until` keep the worker that accepted the call event and its first
-- lease; the live lease is the `active_chains` row.
