-- What the carrier's review decisions name (chatbot/approval.py): a hosted file's URL on the
-- platform ("url:…") or China Mobile's upload transaction ("tid:…"), pointing at its record in
-- hosted_media, so a /check or audit notification finds the record it decides.
CREATE TABLE IF NOT EXISTS hosted_refs (
  ref TEXT PRIMARY KEY,
  platform TEXT NOT NULL,
  digest TEXT NOT NULL,
  until REAL NOT NULL     -- as its record's: dropped with it
) WITHOUT ROWID;
