-- The chatbot's own information on its platform (chatbot/botinfo.py): what is in use and the
-- update the carrier reviews, per platform account and chatbot.
CREATE TABLE IF NOT EXISTS bot_info (
  platform TEXT NOT NULL,
  chatbot TEXT NOT NULL,
  record TEXT NOT NULL,   -- JSON: current {information, approvedAt}, pending {id, information, state, …}
  PRIMARY KEY (platform, chatbot)
) WITHOUT ROWID;
