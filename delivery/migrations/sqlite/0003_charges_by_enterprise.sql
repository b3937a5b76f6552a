-- Usage reports read the ledger by enterprise and day; without this index each report scans
-- every charge of every enterprise.
CREATE INDEX IF NOT EXISTS charges_by_ent ON charges (enterprise, day);
