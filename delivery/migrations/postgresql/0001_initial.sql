-- The delivery domain on PostgreSQL, as first released: the SQLite store's tables, with the
-- lease columns of fleet workers on deliveries.
CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, enterprise TEXT NOT NULL, id TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (kind, enterprise, id));
CREATE INDEX IF NOT EXISTS objects_by_id ON objects (kind, id);
CREATE TABLE IF NOT EXISTS audit (seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL, enterprise TEXT NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_ent ON audit (enterprise, seq);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, enterprise TEXT, label TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS calls (call_id TEXT NOT NULL, phase TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (call_id, phase));
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, call_id TEXT NOT NULL, phase TEXT NOT NULL,
    enterprise TEXT NOT NULL, line TEXT NOT NULL, recipient TEXT NOT NULL, card TEXT NOT NULL,
    template TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, chain TEXT NOT NULL,
    step INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, channel TEXT NOT NULL,
    event_at DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL, owner TEXT NOT NULL DEFAULT '',
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS deliveries_active ON deliveries (lease_until) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS deliveries_by_call ON deliveries (call_id);
CREATE INDEX IF NOT EXISTS deliveries_by_ent ON deliveries (enterprise, created);
CREATE INDEX IF NOT EXISTS deliveries_by_person ON deliveries (recipient, enterprise, updated);
CREATE TABLE IF NOT EXISTS attempts (id BIGSERIAL PRIMARY KEY, delivery TEXT NOT NULL, step INTEGER NOT NULL,
    channel TEXT NOT NULL, state TEXT NOT NULL, segments INTEGER NOT NULL, units INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL, deadline DOUBLE PRECISION NOT NULL, done DOUBLE PRECISION,
    detail TEXT NOT NULL, UNIQUE (delivery, step));
CREATE TABLE IF NOT EXISTS message_ids (message_id TEXT PRIMARY KEY, attempt BIGINT NOT NULL, stat TEXT);
CREATE INDEX IF NOT EXISTS message_ids_by_attempt ON message_ids (attempt);
CREATE TABLE IF NOT EXISTS receipts (message_id TEXT PRIMARY KEY, stat TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS optouts (enterprise TEXT NOT NULL, number TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (enterprise, number));
CREATE TABLE IF NOT EXISTS taps (enterprise TEXT NOT NULL, card TEXT NOT NULL, button TEXT NOT NULL,
    day TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (enterprise, card, button, day));
CREATE TABLE IF NOT EXISTS impressions (enterprise TEXT NOT NULL, card TEXT NOT NULL, day TEXT NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0, taps INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (enterprise, card, day));
CREATE TABLE IF NOT EXISTS replies_seen (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS replies_seen_by_age ON replies_seen (at);
CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, enterprise TEXT NOT NULL, package TEXT,
    line TEXT NOT NULL, channel TEXT NOT NULL, units INTEGER NOT NULL, overage INTEGER NOT NULL,
    cost DOUBLE PRECISION NOT NULL, day TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0);
