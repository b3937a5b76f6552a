-- The console's sign-in sessions live in the database every worker reads, so any worker accepts
-- a session another issued. Only hashes are kept: the session token and the key it came from.
-- The audit log is read newest first per enterprise, and lines and staff are paged per
-- enterprise by the console; this index serves the first (the objects key serves the second).
CREATE TABLE IF NOT EXISTS console_sessions (hash TEXT PRIMARY KEY, key_hash TEXT NOT NULL,
    enterprise TEXT, csrf TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_by_expiry ON console_sessions (expires);
CREATE INDEX IF NOT EXISTS audit_by_ent ON audit (enterprise, seq);
