-- Drop the `dedupe` table of call-event keys. Releases before delivery became its own package
-- kept the SQLite counters' call-event dedupe in it (key, until) inside this database; the SQLite
-- counters now rely on the `calls` row itself (delivery/metering/sqlite.py) and the Redis
-- counters keep their keys in Redis, so nothing reads or writes it any more. Databases made by
-- those releases still carry it, with rows that are never pruned; newer ones never had it.
DROP TABLE IF EXISTS dedupe;
