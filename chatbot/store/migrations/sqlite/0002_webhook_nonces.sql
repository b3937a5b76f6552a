-- Webhook nonces: each signed callback's (scheme, timestamp, nonce) is remembered until its
-- timestamp leaves the replay window, and a repeat is refused (chatbot/auth.py). The CT/CU
-- signature covers the token, timestamp and nonce but not the body, so without this a captured
-- header triple carries any other body for as long as the timestamp stays fresh.
CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_until ON nonces (until);
