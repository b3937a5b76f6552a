-- The enterprises' media library: one row per file an enterprise uploaded (the bytes are files
-- under the data folder, named by `id`, a content hash; delivery/library/). Two enterprises
-- uploading the same picture have a row each and share the file; each counts it in its quota.
CREATE TABLE IF NOT EXISTS media (enterprise TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    ext TEXT NOT NULL, content_type TEXT NOT NULL, bytes BIGINT NOT NULL, width INTEGER NOT NULL,
    height INTEGER NOT NULL, seconds DOUBLE PRECISION NOT NULL, name TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, PRIMARY KEY (enterprise, id));
CREATE INDEX IF NOT EXISTS media_by_id ON media (id);
-- a photo fetched from a URL is named by it: cards naming that URL find the file
CREATE INDEX IF NOT EXISTS media_by_name ON media (enterprise, name);
