-- A 5G chatbot address belongs to one enterprise: replies and taps that reach a chatbot are
-- credited to its owner, and its sender address is what the operator vouched for. The owner of
-- each chatbot (compared loosely, as delivery/replies.py `bot_id` does: `sip:106500@…`, `106500@…`
-- and `106500` are one chatbot) is a row here, so two enterprises cannot claim one address even
-- when they write at once. Existing enterprises are backfilled; where two already shared one
-- address, the first by id keeps it and the operator settles the other.
CREATE TABLE IF NOT EXISTS chatbot_owners (bot TEXT PRIMARY KEY, enterprise TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chatbot_owners_by_ent ON chatbot_owners (enterprise);
INSERT OR IGNORE INTO chatbot_owners (bot, enterprise)
SELECT bot, id FROM (
    SELECT id, CASE WHEN instr(b, '@') > 0 THEN substr(b, 1, instr(b, '@') - 1) ELSE b END AS bot
    FROM (
        SELECT id, CASE WHEN c LIKE 'sip:%' THEN substr(c, 5) ELSE c END AS b
        FROM (SELECT id, trim(json_extract(body, '$.chatbot')) AS c FROM objects WHERE kind = 'enterprise')
    )
)
WHERE bot IS NOT NULL AND bot <> ''
ORDER BY id;
