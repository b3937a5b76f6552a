-- Short links carried by SMS, flash and USSD texts (delivery/shortlinks.py): one row per code,
-- written with the attempt whose text carries it, and the opens counted for the enterprise.
-- No client address is kept for an open, only a coarse class of its browser.
CREATE TABLE IF NOT EXISTS short_links (code TEXT PRIMARY KEY, enterprise TEXT NOT NULL,
    recipient TEXT NOT NULL, delivery TEXT NOT NULL, step INTEGER NOT NULL, channel TEXT NOT NULL,
    kind TEXT NOT NULL, target TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    first_open REAL);
CREATE INDEX IF NOT EXISTS short_links_by_delivery ON short_links (delivery, step);
CREATE INDEX IF NOT EXISTS short_links_by_expiry ON short_links (expires);
CREATE TABLE IF NOT EXISTS link_opens (id TEXT PRIMARY KEY, code TEXT NOT NULL, at REAL NOT NULL,
    client TEXT NOT NULL, is_first INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS link_opens_by_code ON link_opens (code, at);
