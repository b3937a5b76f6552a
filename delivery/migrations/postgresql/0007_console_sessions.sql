-- The console's sign-in sessions live in the database every worker reads, so any worker accepts
-- a session another issued. Only hashes are kept: the session token and the key it came from.
CREATE TABLE IF NOT EXISTS console_sessions (hash TEXT PRIMARY KEY, key_hash TEXT NOT NULL,
    enterprise TEXT, csrf TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_by_expiry ON console_sessions (expires);
