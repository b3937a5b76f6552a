-- The chains still running, under the name PostgreSQL's table has, so the store reads them with
-- the same statements on both databases. One process owns a SQLite file and runs every chain in
-- it, so there is no lease to keep: each active delivery is listed as its own, with no owner.
CREATE VIEW IF NOT EXISTS active_chains AS
    SELECT id AS delivery, '' AS owner, 0.0 AS lease_until FROM deliveries WHERE state = 'active';
