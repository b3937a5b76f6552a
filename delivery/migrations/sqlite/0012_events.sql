-- The event stream of deliveries (delivery/events.py): each fact once per (delivery, step, kind,
-- key), kept `event_retention_days` and pruned a day at a time (`day`: the China day the delivery
-- was created, so all the facts of one delivery share a day); the rollups per minute, hour and
-- day that every report reads; and the histogram of seconds from the first send to each fact.
CREATE TABLE IF NOT EXISTS delivery_events (day TEXT NOT NULL, delivery TEXT NOT NULL,
    step INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, enterprise TEXT NOT NULL,
    card TEXT NOT NULL, version INTEGER NOT NULL, experiment TEXT NOT NULL, variant TEXT NOT NULL,
    channel TEXT NOT NULL, vendor TEXT NOT NULL, button TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL, since DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (day, delivery, step, kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_rollups (grain TEXT NOT NULL, bucket DOUBLE PRECISION NOT NULL,
    enterprise TEXT NOT NULL, card TEXT NOT NULL, version INTEGER NOT NULL,
    experiment TEXT NOT NULL, variant TEXT NOT NULL, channel TEXT NOT NULL, step INTEGER NOT NULL,
    kind TEXT NOT NULL, button TEXT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (enterprise, card, grain, bucket, version, experiment, variant, channel, step, kind, button)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_latency (grain TEXT NOT NULL, bucket DOUBLE PRECISION NOT NULL,
    enterprise TEXT NOT NULL, card TEXT NOT NULL, version INTEGER NOT NULL,
    experiment TEXT NOT NULL, variant TEXT NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL,
    bin INTEGER NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (enterprise, card, grain, bucket, version, experiment, variant, channel, kind, bin)) WITHOUT ROWID;
