"""The event stream's rows (delivery/events.py): the inbox facts are written to, raw events once
each, and the rollups and latency histograms every report reads.

A fact is first a row of `delivery_event_inbox`, written with the write it belongs to: on SQLite
a statement inside the store's open group-commit transaction (groupcommit.py), on PostgreSQL an
`InboxEvent` record of the group commit (pgbatch.py gathers them into `INBOX_SQL`). It carries
only what its caller knows (delivery, step, kind, key, channel, vendor, button, time).

A roll is one transaction: claim a batch of the inbox (PostgreSQL: `DELETE … WHERE id = ANY(ARRAY(
SELECT … FOR UPDATE SKIP LOCKED)) RETURNING`, so the workers' rollers claim disjoint rows; SQLite:
one process, the oldest rows), join each fact with its delivery and its first attempt and insert
it as a raw event with `ON CONFLICT DO NOTHING RETURNING`, all on the server in one statement
(`ROLL_SQL`, `SQLITE_ROLL_SQL`), so only the events nobody rolled before come back, once; those
alone are added to the rollups (per minute, hour and day) and histograms, each aggregate one
statement more (PostgreSQL: `unnest` of arrays). A repeated receipt or tap therefore counts once,
whichever process hears it, and a roller killed mid-roll leaves its claim in the inbox. `add`
inserts raw events made by the caller (on SQLite through a staging table, `STAGE_SQL`): for
rebuilding and for the benchmark's baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..drivers import Driver

log = logging.getLogger("mingpian.delivery")

# `day`: the delivery's (its partition on PostgreSQL), so the roll reads one partition per fact.
INBOX_COLUMNS = ("delivery", "step", "kind", "key", "channel", "vendor", "button", "at", "day")
INBOX_ROW_SQL = (
    f"INSERT INTO delivery_event_inbox ({', '.join(INBOX_COLUMNS)}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
)
INBOX_SQL = (
    f"INSERT INTO delivery_event_inbox ({', '.join(INBOX_COLUMNS)}) SELECT * FROM unnest($1::text[], "
    "$2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::text[])"
)

RAW_COLUMNS = (
    "day", "delivery", "step", "kind", "key", "enterprise", "card", "version", "experiment",
    "variant", "channel", "vendor", "button", "at", "since",
)  # fmt: skip
RAW_TYPES = (
    "text", "text", "int", "text", "text", "text", "text", "int", "text",
    "text", "text", "text", "text", "float8", "float8",
)  # fmt: skip
# What comes back of a new event: what its rollups and histogram are keyed by.
NEW = "enterprise, card, version, experiment, variant, channel, step, kind, key, button, at, since"
# A roll: the claimed facts, each joined with its delivery (NULL: gone) and its first attempt,
# made raw events and inserted in one statement on the server, so only the new events travel,
# once, for their rollups (`NEW`). The lookups are lateral on PostgreSQL: one index probe per fact,
# whatever the tables' size or statistics (a hash join would read every delivery). Each database
# spells the raw event's derived columns its own way: the China day the delivery was created, the
# version, experiment and variant from its data, the seconds since its first attempt began. A raw
# event's day is its delivery's (on SQLite, for a delivery stored without one, that of its creation).
RAW_SELECT = {
    "postgresql": "dday, delivery, "
    "step, kind, key, enterprise, card, trunc(COALESCE(NULLIF(doc->>'version', '')::numeric, 0))::int, "
    "COALESCE(doc->>'experiment', ''), COALESCE(doc->>'variant', ''), channel, vendor, button, at, "
    "GREATEST(at - COALESCE(started, created), 0)",
    "sqlite": "COALESCE(NULLIF(dday, ''), date(created, 'unixepoch', '+8 hours')), delivery, step, kind, "
    "key, enterprise, card, "
    "CAST(COALESCE(json_extract(doc, '$.version'), 0) AS INTEGER), COALESCE(json_extract(doc, "
    "'$.experiment'), ''), COALESCE(json_extract(doc, '$.variant'), ''), channel, vendor, button, at, "
    "max(at - COALESCE(started, created), 0)",
}
CLAIMED = (
    "c.delivery, c.step, c.kind, c.key, c.channel, c.vendor, c.button, c.at, d.enterprise, d.card, "
    "d.created, d.day AS dday, a.started"
)
# A fact's delivery and first attempt in the fact's day (one partition each); only when not found
# there (a fact written without its day, or an attempt stored before attempts took their
# delivery's day) in every kept day: the second branch of each runs only when the first found none.
DELIVERY_OF_FACT = (
    "(SELECT enterprise, card, data, created, day FROM deliveries WHERE id = c.delivery AND day = c.day) "
    "UNION ALL (SELECT enterprise, card, data, created, day FROM deliveries WHERE id = c.delivery) LIMIT 1"
)
FIRST_ATTEMPT_OF_FACT = (
    "(SELECT started FROM attempts WHERE delivery = c.delivery AND step = 0 AND day = d.day) "
    "UNION ALL (SELECT started FROM attempts WHERE delivery = c.delivery AND step = 0) LIMIT 1"
)
# PostgreSQL: the claim (`DELETE … SKIP LOCKED`: the workers' rollers claim disjoint rows), the
# raw events and how many facts were claimed and had no delivery, in one statement: its rows are
# `NEW` then those two counts (one row with NULLs when none was new).
ROLL_SQL = (
    "WITH c AS (DELETE FROM delivery_event_inbox WHERE id = ANY(ARRAY(SELECT id FROM delivery_event_inbox "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING *), "
    f"j AS (SELECT {CLAIMED}, d.data::jsonb AS doc FROM c LEFT JOIN LATERAL ({DELIVERY_OF_FACT}) d ON true "
    f"LEFT JOIN LATERAL ({FIRST_ATTEMPT_OF_FACT}) a ON true), "
    f"ins AS (INSERT INTO delivery_events ({', '.join(RAW_COLUMNS)}) SELECT {RAW_SELECT['postgresql']} "
    "FROM j WHERE enterprise IS NOT NULL ORDER BY 1, 2, 3, 4, 5 ON CONFLICT DO NOTHING RETURNING "
    f"{NEW}), k AS (SELECT count(*) AS claimed, count(*) FILTER (WHERE enterprise IS NULL) AS gone FROM j) "
    "SELECT ins.*, k.claimed, k.gone FROM k LEFT JOIN ins ON true"
)
# SQLite (one process, one transaction at a time): the oldest `$1` rows (the last id, how many,
# how many without a delivery), then the raw events of the rows up to that id, then their delete.
SQLITE_CLAIM_SQL = (
    "SELECT max(c.id), count(*), sum(d.id IS NULL) FROM (SELECT id, delivery FROM delivery_event_inbox "
    "ORDER BY id LIMIT $1) c LEFT JOIN deliveries d ON d.id = c.delivery"
)
SQLITE_ROLL_SQL = (
    f"INSERT INTO delivery_events ({', '.join(RAW_COLUMNS)}) SELECT {RAW_SELECT['sqlite']} FROM "
    f"(SELECT {CLAIMED}, d.data AS doc FROM delivery_event_inbox c JOIN deliveries d ON d.id = c.delivery "
    "LEFT JOIN attempts a ON a.delivery = c.delivery AND a.step = 0 WHERE c.id <= $1) "
    f"WHERE true ON CONFLICT DO NOTHING RETURNING {NEW}"
)
UNCLAIM_SQL = "DELETE FROM delivery_event_inbox WHERE id <= $1"  # SQLite: what the roll read
INBOX_LEFT_SQL = "SELECT count(*) FROM delivery_event_inbox WHERE id <= $1"
INBOX_LAST_SQL = "SELECT max(id) FROM delivery_event_inbox"
# SQLite: the batch goes to a table of this connection without an index first (executemany, a
# third of the cost of a statement per event), then into the events in one statement (`WHERE
# true`: an upsert's SELECT needs a WHERE for SQLite to parse its ON CONFLICT).
STAGE_TABLE_SQL = "CREATE TEMP TABLE IF NOT EXISTS events_in AS SELECT * FROM delivery_events WHERE false"
STAGE_SQL = (
    f"INSERT INTO events_in ({', '.join(RAW_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(RAW_COLUMNS)))})"
)
FROM_STAGE_SQL = (
    f"INSERT INTO delivery_events ({', '.join(RAW_COLUMNS)}) SELECT {', '.join(RAW_COLUMNS)} "
    f"FROM events_in WHERE true ON CONFLICT DO NOTHING RETURNING {NEW}"
)
RAW_ARRAYS_SQL = (
    f"INSERT INTO delivery_events ({', '.join(RAW_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(RAW_TYPES))
    + ") ORDER BY 1, 2, 3, 4, 5 ON CONFLICT DO NOTHING RETURNING "
    + NEW
)
ROLLUP_KEY = "enterprise, card, grain, bucket, version, experiment, variant, channel, step, kind, button"
ROLLUP_ROW_SQL = (
    f"INSERT INTO event_rollups ({ROLLUP_KEY}, n) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
    f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET n = event_rollups.n + excluded.n"
)
ROLLUP_ARRAYS_SQL = (
    f"INSERT INTO event_rollups ({ROLLUP_KEY}, n) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::float8[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], "
    f"$11::text[], $12::bigint[]) ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ON CONFLICT ({ROLLUP_KEY}) "
    "DO UPDATE SET n = event_rollups.n + excluded.n"
)
LATENCY_KEY = "enterprise, card, grain, bucket, version, experiment, variant, channel, kind, bin"
LATENCY_ROW_SQL = (
    f"INSERT INTO event_latency ({LATENCY_KEY}, n) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) "
    f"ON CONFLICT ({LATENCY_KEY}) DO UPDATE SET n = event_latency.n + excluded.n"
)
LATENCY_ARRAYS_SQL = (
    f"INSERT INTO event_latency ({LATENCY_KEY}, n) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::float8[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[], "
    f"$11::bigint[]) ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ON CONFLICT ({LATENCY_KEY}) "
    "DO UPDATE SET n = event_latency.n + excluded.n"
)
COUNTS_SQL = (
    "SELECT variant, kind, button, sum(n) FROM event_rollups WHERE enterprise=$1 AND card=$2 "
    "AND grain=$3 AND bucket >= $4 AND bucket < $5 AND ($6 = '' OR experiment = $6) GROUP BY 1, 2, 3"
)
# The funnel's rows: every rollup of one card (or every card: $2 = '') in a range, at a grain.
SERIES_SQL = (
    "SELECT bucket, card, version, variant, channel, step, kind, button, sum(n) FROM event_rollups "
    "WHERE enterprise=$1 AND ($2 = '' OR card=$2) AND grain=$3 AND bucket >= $4 AND bucket < $5 "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1"
)
LATENCY_SQL = (
    "SELECT bucket, card, version, variant, channel, kind, bin, sum(n) FROM event_latency "
    "WHERE enterprise=$1 AND ($2 = '' OR card=$2) AND grain=$3 AND bucket >= $4 AND bucket < $5 "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7"
)

Rollup = tuple[str, str, str, float, int, str, str, str, int, str, str]


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A fact for the inbox (also the group commit's record on PostgreSQL): it commits with the
    write it rides."""

    delivery: str
    step: int
    kind: str
    key: str
    channel: str
    vendor: str
    button: str
    at: float
    day: str = ""  # the delivery's ("": not known; the roll then looks in every kept day)


Latency = tuple[str, str, str, float, int, str, str, str, str, int]


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (PostgreSQL's `unnest` arrays)."""
    return [[r[i] for r in rows] for i in range(width)]


class EventRows:
    """The event tables of one store, through its driver."""

    def __init__(self, db: Driver) -> None:
        self.db = db

    async def inbox(self, e: InboxEvent) -> None:
        """Write a fact to the inbox: it commits with the writes around it (inside a `tx()`, with
        the block's; on PostgreSQL in the group commit, with whatever the caller awaits next)."""
        w = self.db.writes
        if w is not None:
            w.queue(e)
        else:
            await self.db.run(
                INBOX_ROW_SQL, e.delivery, e.step, e.kind, e.key, e.channel, e.vendor, e.button, e.at, e.day
            )

    async def roll(self, limit: int, aggregate: Any) -> tuple[int, int]:
        """One transaction: claim up to `limit` facts of the inbox, insert them as raw events, add
        the new ones to the rollups (`aggregate`, as in `add`). (claimed, new)."""
        async with self.db.transaction():
            if self.db.name == "postgresql":
                rows = await self.db.all(ROLL_SQL, limit)
                claimed, gone = int(rows[0][-2]), int(rows[0][-1])
                new = [r[:-2] for r in rows if r[0] is not None]
            else:
                last, claimed, gone = await self.db.one(SQLITE_CLAIM_SQL, limit) or (None, 0, 0)
                if not claimed:
                    return 0, 0
                new = await self.db.all(SQLITE_ROLL_SQL, last)
                await self.db.run(UNCLAIM_SQL, last)
            if gone:
                log.warning("delivery events: %d facts of deliveries no longer stored dropped", gone)
            if new:
                await self._aggregates(new, aggregate)
            return int(claimed), len(new)

    async def inbox_last(self) -> int:
        """The newest inbox row's id (0: empty)."""
        row = await self.db.one(INBOX_LAST_SQL)
        return int(row[0]) if row and row[0] is not None else 0

    async def inbox_left(self, upto: int) -> int:
        """Inbox rows up to id `upto` still there (claimed by a roll not committed yet, or not yet)."""
        row = await self.db.one(INBOX_LEFT_SQL, upto)
        return int(row[0]) if row else 0

    async def add(
        self,
        raw: list[tuple[Any, ...]],
        aggregate: Any,
    ) -> int:
        """Insert the raw events; the new ones (as `NEW` rows) go to `aggregate`, which answers
        (rollup increments, latency increments); both are added in the same transaction (the
        caller's, when in one). Returns how many events were new."""
        pg = self.db.name == "postgresql"
        async with self.db.transaction():
            if pg:
                new = await self.db.all(RAW_ARRAYS_SQL, *columns(raw, len(RAW_COLUMNS)))
            else:
                await self.db.run(STAGE_TABLE_SQL)
                await self.db.run_many(STAGE_SQL, raw)
                new = await self.db.all(FROM_STAGE_SQL)
                await self.db.run("DELETE FROM events_in")
            if not new:
                return 0
            await self._aggregates(new, aggregate)
        return len(new)

    async def _aggregates(self, new: Sequence[Sequence[Any]], aggregate: Any) -> None:
        """Add the new events (`NEW` rows) to the rollups and histograms (in the caller's transaction)."""
        rollups, latency = aggregate(new)
        if self.db.name == "postgresql":
            await self.db.run(ROLLUP_ARRAYS_SQL, *columns(rollups, 12))
            if latency:
                await self.db.run(LATENCY_ARRAYS_SQL, *columns(latency, 11))
        else:
            await self.db.run_many(ROLLUP_ROW_SQL, rollups)
            if latency:
                await self.db.run_many(LATENCY_ROW_SQL, latency)

    async def counts(
        self, enterprise: str, card: str, grain: str, since: float, until: float, experiment: str
    ) -> list[tuple[str, str, str, int]]:
        rows = await self.db.all(COUNTS_SQL, enterprise, card, grain, since, until, experiment)
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    async def series(
        self, enterprise: str, card: str, grain: str, since: float, until: float
    ) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.db.all(SERIES_SQL, enterprise, card, grain, since, until)]

    async def latency(
        self, enterprise: str, card: str, grain: str, since: float, until: float
    ) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.db.all(LATENCY_SQL, enterprise, card, grain, since, until)]
