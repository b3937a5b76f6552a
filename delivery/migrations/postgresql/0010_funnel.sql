-- The delivery funnel (delivery/funnel.py): each fact beyond the attempts (a card displayed, a
-- link of it opened) once per delivery, step and fact, and the daily counters its report reads
-- per enterprise, day (the day the attempt started, China time) and channel. Sent and delivered
-- are counted from the attempts once a day can no longer change, its `funnel_sealed` row saying so.
CREATE TABLE IF NOT EXISTS funnel_facts (delivery TEXT NOT NULL, step INTEGER NOT NULL,
    fact TEXT NOT NULL, enterprise TEXT NOT NULL, channel TEXT NOT NULL, day TEXT NOT NULL,
    how TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (delivery, step, fact));
CREATE TABLE IF NOT EXISTS funnel_days (enterprise TEXT NOT NULL, day TEXT NOT NULL,
    channel TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
    displayed INTEGER NOT NULL DEFAULT 0, opened INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (enterprise, day, channel));
CREATE TABLE IF NOT EXISTS funnel_sealed (enterprise TEXT NOT NULL, day TEXT NOT NULL,
    PRIMARY KEY (enterprise, day));
