-- Media hosted on a MaaP (chatbot/hosting.py): what a platform answered when a file was uploaded
-- to it, per platform and content hash, so a card's media is uploaded once and its URL reused
-- until the platform's expiry.
CREATE TABLE IF NOT EXISTS hosted_media (
  platform TEXT NOT NULL,
  digest TEXT NOT NULL,
  record TEXT NOT NULL,   -- JSON: url, until, contentType, size and the thumbnail's
  until REAL NOT NULL,    -- when the platform drops it (Unix time); 0: kept
  PRIMARY KEY (platform, digest)
) WITHOUT ROWID;
