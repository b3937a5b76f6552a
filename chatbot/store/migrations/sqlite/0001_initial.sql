-- The chatbot SQLite store's schema as it was before numbered migrations, when every open ran
-- this script. A database made then has these tables already: it is adopted (this migration is
-- recorded as applied without running it; see infra/migrations.py).
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conv (id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  conv TEXT NOT NULL,
  body TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL DEFAULT 0,
  lease_until REAL NOT NULL DEFAULT 0,
  created REAL NOT NULL,
  sent_at REAL,
  last_error TEXT,
  delivery TEXT,                           -- latest status report from the platform
  delivery_at REAL
);
DROP INDEX IF EXISTS outbox_pending;  -- the queue index lives in memory (chatbot/store/sqlite.py)
CREATE INDEX IF NOT EXISTS outbox_done ON outbox (sent_at) WHERE state != 'pending';
CREATE INDEX IF NOT EXISTS dedupe_at ON dedupe (at);
