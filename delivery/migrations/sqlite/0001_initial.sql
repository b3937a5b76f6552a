-- The delivery store's schema as it was before numbered migrations, when every open ran these
-- CREATE ... IF NOT EXISTS statements. A database made then has these tables already: it is
-- adopted (this migration is recorded as applied without running it; see infra/migrations.py).
CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, enterprise TEXT NOT NULL, id TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (kind, enterprise, id));
CREATE INDEX IF NOT EXISTS objects_by_id ON objects (kind, id);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL,
    enterprise TEXT NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, enterprise TEXT, label TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calls (call_id TEXT NOT NULL, phase TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (call_id, phase)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, call_id TEXT NOT NULL, phase TEXT NOT NULL,
    enterprise TEXT NOT NULL, line TEXT NOT NULL, recipient TEXT NOT NULL, card TEXT NOT NULL,
    template TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, chain TEXT NOT NULL,
    step INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, channel TEXT NOT NULL,
    event_at REAL NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_active ON deliveries (state) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS deliveries_by_ent ON deliveries (enterprise, created);
CREATE INDEX IF NOT EXISTS deliveries_by_person ON deliveries (recipient, enterprise);
CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, delivery TEXT NOT NULL, step INTEGER NOT NULL,
    channel TEXT NOT NULL, state TEXT NOT NULL, segments INTEGER NOT NULL, units INTEGER NOT NULL,
    started REAL NOT NULL, deadline REAL NOT NULL, done REAL, detail TEXT NOT NULL,
    UNIQUE (delivery, step));
CREATE TABLE IF NOT EXISTS message_ids (message_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL,
    stat TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_ids_by_attempt ON message_ids (attempt);
CREATE TABLE IF NOT EXISTS receipts (message_id TEXT PRIMARY KEY, stat TEXT NOT NULL, at REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS optouts (enterprise TEXT NOT NULL, number TEXT NOT NULL, at REAL NOT NULL,
    channel TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (enterprise, number)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS taps (enterprise TEXT NOT NULL, card TEXT NOT NULL, button TEXT NOT NULL,
    day TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (enterprise, card, button, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS impressions (enterprise TEXT NOT NULL, card TEXT NOT NULL, day TEXT NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0, taps INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (enterprise, card, day));
CREATE TABLE IF NOT EXISTS replies_seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
-- metering (metering/): package counters of the SQLite counters, frequency caps, the ledger
CREATE TABLE IF NOT EXISTS package_usage (package TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0,
    overage INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, enterprise TEXT NOT NULL, package TEXT,
    line TEXT NOT NULL, channel TEXT NOT NULL, units INTEGER NOT NULL, overage INTEGER NOT NULL,
    cost REAL NOT NULL, day TEXT NOT NULL, at REAL NOT NULL, refunded INTEGER NOT NULL DEFAULT 0)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS caps (key TEXT NOT NULL, at REAL NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY (key, member)) WITHOUT ROWID;
