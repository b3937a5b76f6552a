-- The tables that grow with every call event, partitioned by day (`day`: a China day, text
-- 'YYYY-MM-DD', LIST partitions as delivery_events in 0011), so that retention drops a whole day
-- (delivery/retention.py) instead of deleting rows: calls, deliveries, attempts, message_ids,
-- receipts, charges and taps. PostgreSQL enforces a unique key only within a partition, so each
-- primary key and unique constraint now carries `day`. What `day` is:
--   calls, message_ids, receipts: the China day the row was written (its column default);
--   deliveries: the China day of `created` (written with the row; the delivery's raw events
--     share it); attempts: the day the row was written (the attempt's start);
--   charges, taps: the day they already carried (the day reports group them by).
-- Each table gets a default partition (it catches a day whose partition was not made in time)
-- and partitions for every day its rows have and today -1..+2; the server makes the days ahead.
-- Existing rows are copied in this one transaction and the names swapped: right for the sizes
-- this runs on. On a database of billions of rows do it online instead (docs/operations.md
-- "Retention"): make the partitioned table beside the old one, write to both, copy a day at a
-- time, then swap the names.
CREATE OR REPLACE FUNCTION pg_temp.mp_partition(parent TEXT, days TEXT[], opts TEXT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE d TEXT;
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I DEFAULT %s', parent || '_default', parent, opts);
    FOREACH d IN ARRAY days LOOP
        IF d ~ '^\d{4}-\d{2}-\d{2}$' THEN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES IN (%L) %s',
                parent || '_' || replace(d, '-', ''), parent, d, opts);
        END IF;
    END LOOP;
END $$;
CREATE OR REPLACE FUNCTION pg_temp.mp_around() RETURNS TEXT[] LANGUAGE sql AS $$
    SELECT array_agg(to_char((now() AT TIME ZONE 'UTC') + interval '8 hours' + i * interval '1 day', 'YYYY-MM-DD'))
    FROM generate_series(-1, 2) AS i
$$;

-- calls
ALTER TABLE calls RENAME TO calls_old;
CREATE TABLE calls (LIKE calls_old INCLUDING DEFAULTS,
    day TEXT NOT NULL DEFAULT to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD'),
    PRIMARY KEY (call_id, phase, day)) PARTITION BY LIST (day);
SELECT pg_temp.mp_partition('calls', pg_temp.mp_around() || ARRAY(SELECT DISTINCT
    to_char(to_timestamp(at + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM calls_old), '');
INSERT INTO calls SELECT o.*, to_char(to_timestamp(o.at + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM calls_old o;
DROP TABLE calls_old;

-- deliveries
ALTER TABLE deliveries RENAME TO deliveries_old;
DROP INDEX IF EXISTS deliveries_by_call;
DROP INDEX IF EXISTS deliveries_by_ent;
DROP INDEX IF EXISTS deliveries_by_person;
CREATE TABLE deliveries (LIKE deliveries_old INCLUDING DEFAULTS,
    day TEXT NOT NULL DEFAULT to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD'),
    PRIMARY KEY (id, day)) PARTITION BY LIST (day);
CREATE INDEX deliveries_by_call ON deliveries (call_id);
CREATE INDEX deliveries_by_ent ON deliveries (enterprise, created);
CREATE INDEX deliveries_by_person ON deliveries (recipient, enterprise, created);
SELECT pg_temp.mp_partition('deliveries', pg_temp.mp_around() || ARRAY(SELECT DISTINCT
    to_char(to_timestamp(created + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM deliveries_old),
    'WITH (fillfactor = 80)');
INSERT INTO deliveries SELECT o.*, to_char(to_timestamp(o.created + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM deliveries_old o;
DROP TABLE deliveries_old;

-- attempts (the id's sequence moves to the new table: pg_get_serial_sequence finds it there)
ALTER TABLE attempts RENAME TO attempts_old;
CREATE TABLE attempts (LIKE attempts_old INCLUDING DEFAULTS,
    day TEXT NOT NULL DEFAULT to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD'),
    PRIMARY KEY (id, day), UNIQUE (delivery, step, day)) PARTITION BY LIST (day);
ALTER SEQUENCE attempts_id_seq OWNED BY attempts.id;
SELECT pg_temp.mp_partition('attempts', pg_temp.mp_around() || ARRAY(SELECT DISTINCT
    to_char(to_timestamp(started + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM attempts_old), '');
INSERT INTO attempts SELECT o.*, to_char(to_timestamp(o.started + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM attempts_old o;
DROP TABLE attempts_old;

-- message_ids (an existing id takes its attempt's day)
ALTER TABLE message_ids RENAME TO message_ids_old;
DROP INDEX IF EXISTS message_ids_by_attempt;
CREATE TABLE message_ids (LIKE message_ids_old INCLUDING DEFAULTS,
    day TEXT NOT NULL DEFAULT to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD'),
    PRIMARY KEY (message_id, day)) PARTITION BY LIST (day);
CREATE INDEX message_ids_by_attempt ON message_ids (attempt);
SELECT pg_temp.mp_partition('message_ids', pg_temp.mp_around() || ARRAY(SELECT DISTINCT a.day
    FROM message_ids_old m JOIN attempts a ON a.id = m.attempt), '');
INSERT INTO message_ids SELECT o.*, COALESCE((SELECT a.day FROM attempts a WHERE a.id = o.attempt LIMIT 1),
    to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD')) FROM message_ids_old o;
DROP TABLE message_ids_old;

-- receipts
ALTER TABLE receipts RENAME TO receipts_old;
DROP INDEX IF EXISTS receipts_by_source;
CREATE TABLE receipts (LIKE receipts_old INCLUDING DEFAULTS,
    day TEXT NOT NULL DEFAULT to_char((now() AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD'),
    PRIMARY KEY (message_id, day)) PARTITION BY LIST (day);
CREATE INDEX receipts_by_source ON receipts (source, at);
SELECT pg_temp.mp_partition('receipts', pg_temp.mp_around() || ARRAY(SELECT DISTINCT
    to_char(to_timestamp(at + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM receipts_old), '');
INSERT INTO receipts SELECT o.*, to_char(to_timestamp(o.at + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM receipts_old o;
DROP TABLE receipts_old;

-- charges (already by day)
ALTER TABLE charges RENAME TO charges_old;
DROP INDEX IF EXISTS charges_by_ent;
CREATE TABLE charges (LIKE charges_old INCLUDING DEFAULTS, PRIMARY KEY (key, day)) PARTITION BY LIST (day);
CREATE INDEX charges_by_ent ON charges (enterprise, day);
SELECT pg_temp.mp_partition('charges', pg_temp.mp_around() || ARRAY(SELECT DISTINCT day FROM charges_old), '');
INSERT INTO charges SELECT * FROM charges_old;
DROP TABLE charges_old;

-- taps (already by day)
ALTER TABLE taps RENAME TO taps_old;
CREATE TABLE taps (LIKE taps_old INCLUDING DEFAULTS, PRIMARY KEY (enterprise, card, button, day))
    PARTITION BY LIST (day);
SELECT pg_temp.mp_partition('taps', pg_temp.mp_around() || ARRAY(SELECT DISTINCT day FROM taps_old), '');
INSERT INTO taps SELECT * FROM taps_old;
DROP TABLE taps_old;
