"""The delivery funnel's rows (delivery/funnel.py): facts beyond the attempts, once each, and the
daily counters the funnel report reads.

A fact (a card displayed, a link of it opened) is a row keyed by (delivery, step, fact); the
statement that inserts it also adds one to its day's counter, and only when the row is new, so a
repeated receipt or open counts once whatever process hears it. The day is the day its attempt
started (China time), so a step's conversion compares cards sent on the same day; a fact whose
attempt is not found counts on the day it happened. On SQLite a fact is two statements in one
block; on PostgreSQL it is a record for the group commit (pgbatch.py), whose statement answers
which of its facts were new.

Sent and delivered come from the attempts: a day that can no longer change (funnel.py says when)
is counted once into the same daily rows and marked sealed; the days after it are read from the
attempts each time, through the index of deliveries by enterprise and creation time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..drivers import Driver
from .reach import DAY

FACTS = ("displayed", "opened")  # the counter columns: only these names reach the SQL text
# What an attempt counts as: sent once it reached a gateway, delivered once its receipt said so
# (a card SMS its vendor's render receipt marked `displayed` was delivered too).
SENT = "a.state IN ('submitted', 'delivered', 'displayed', 'failed', 'timeout', 'unknown')"
DELIVERED = "a.state IN ('delivered', 'displayed')"


@dataclass(frozen=True, slots=True)
class FunnelFact:
    """A fact of a delivery's step (also the group commit's record on PostgreSQL). `day` is the
    day it happened: used when its attempt is not found."""

    delivery: str
    step: int
    fact: str  # one of FACTS
    enterprise: str
    channel: str
    day: str
    how: str
    at: float

    @property
    def key(self) -> str:
        return f"{self.delivery}|{self.step}|{self.fact}"


FACT_ROW_SQL = {
    db: "INSERT INTO funnel_facts (delivery, step, fact, enterprise, channel, day, how, at) "
    f"SELECT $1, $2, $3, $4, $5, COALESCE((SELECT {day} FROM attempts a "
    "WHERE a.delivery=$1 AND a.step=$2), $6), $7, $8 WHERE true ON CONFLICT DO NOTHING RETURNING day"
    for db, day in DAY.items()
}
COUNT_ROW_SQL = {
    fact: f"INSERT INTO funnel_days (enterprise, day, channel, {fact}) VALUES ($1,$2,$3,1) "
    f"ON CONFLICT (enterprise, day, channel) DO UPDATE SET {fact} = funnel_days.{fact} + 1"
    for fact in FACTS
}
FACT_ARRAYS = ("delivery", "step", "fact", "enterprise", "channel", "day", "how", "at")
# PostgreSQL: every fact of a flush, as common table expressions the flush's one statement
# takes (`fct` are the new facts), and the rows that name them in its answer.
FACTS_CTES = (
    "fu AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::float8[]) AS u(delivery, step, fact, enterprise, channel, day, how, at)), "
    "fct AS (INSERT INTO funnel_facts (delivery, step, fact, enterprise, channel, day, how, at) "
    "SELECT fu.delivery, fu.step, fu.fact, fu.enterprise, fu.channel, "
    f"COALESCE({DAY['postgresql']}, fu.day), fu.how, fu.at "
    "FROM fu LEFT JOIN attempts a ON a.delivery = fu.delivery AND a.step = fu.step "
    "ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING RETURNING delivery, step, fact, enterprise, channel, day), "
    "fdy AS (INSERT INTO funnel_days (enterprise, day, channel, displayed, opened) "
    "SELECT enterprise, day, channel, sum((fact = 'displayed')::int), sum((fact = 'opened')::int) "
    "FROM fct GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 ON CONFLICT (enterprise, day, channel) DO UPDATE SET "
    "displayed = funnel_days.displayed + excluded.displayed, opened = funnel_days.opened + excluded.opened)"
)
FACTS_ROWS = "SELECT 'f' AS k, delivery || '|' || step || '|' || fact AS id, NULL AS phase FROM fct"
FACTS_SQL = f"WITH {FACTS_CTES} {FACTS_ROWS}"

DAYS_SQL = (
    "SELECT day, channel, sent, delivered, displayed, opened FROM funnel_days "
    "WHERE enterprise=$1 AND day >= $2 AND day <= $3 ORDER BY day, channel"
)
SEALED_SQL = "SELECT day FROM funnel_sealed WHERE enterprise=$1 AND day >= $2 AND day <= $3"
# Attempts started in [$2, $3) of deliveries created since a day before (a chain's steps follow
# its call event within minutes), per day and channel.
SENT_SQL = {
    db: f"SELECT {day} AS day, a.channel, sum(CASE WHEN {SENT} THEN 1 ELSE 0 END), "
    f"sum(CASE WHEN {DELIVERED} THEN 1 ELSE 0 END) FROM deliveries d JOIN attempts a ON a.delivery = d.id "
    "WHERE d.enterprise=$1 AND d.created >= $2 - 86400 AND d.created < $3 AND a.started >= $2 "
    "AND a.started < $3 GROUP BY 1, 2 ORDER BY 1, 2"
    for db, day in DAY.items()
}
SEAL_COUNTS_SQL = (
    "INSERT INTO funnel_days (enterprise, day, channel, sent, delivered) VALUES ($1,$2,$3,$4,$5) "
    "ON CONFLICT (enterprise, day, channel) DO UPDATE SET sent = excluded.sent, "
    "delivered = excluded.delivered"
)
SEAL_SQL = "INSERT INTO funnel_sealed (enterprise, day) VALUES ($1,$2) ON CONFLICT DO NOTHING"
STEP_OF_MESSAGE_SQL = (
    "SELECT a.delivery, a.step, a.channel, d.enterprise FROM message_ids m "
    "JOIN attempts a ON a.id = m.attempt JOIN deliveries d ON d.id = a.delivery WHERE m.message_id=$1"
)


class FunnelRows:
    db: Driver

    async def funnel_fact(self, fact: FunnelFact) -> bool:
        """Record a fact and count it on its day, once: True when it was new. On PostgreSQL it
        rides the group commit and returns once committed (not to be awaited inside a `tx()`)."""
        if fact.fact not in FACTS:
            raise ValueError(f"unknown funnel fact {fact.fact!r}")
        w = self.db.writes
        if w is not None:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            w.queue(fact, fut)
            return await fut
        async with self.db.transaction():
            rows = await self.db.all(
                FACT_ROW_SQL[self.db.name], fact.delivery, fact.step, fact.fact, fact.enterprise,
                fact.channel, fact.day, fact.how, fact.at,
            )  # fmt: skip
            if rows:
                await self.db.run(COUNT_ROW_SQL[fact.fact], fact.enterprise, rows[0][0], fact.channel)
        return bool(rows)

    async def step_of_message(self, message_id: str) -> tuple[str, int, str, str] | None:
        """(delivery, step, channel, enterprise) of the attempt a message id was given to."""
        row = await self.db.one(STEP_OF_MESSAGE_SQL, message_id)
        return (row[0], int(row[1]), row[2], row[3]) if row else None

    async def funnel_days(self, enterprise: str, first: str, last: str) -> list[dict[str, Any]]:
        """The daily counters of days `first`..`last` (sent and delivered hold for sealed days)."""
        rows = await self.db.all(DAYS_SQL, enterprise, first, last)
        return [
            {"day": r[0], "channel": r[1], "sent": r[2], "delivered": r[3], "displayed": r[4], "opened": r[5]}
            for r in rows
        ]

    async def funnel_sealed(self, enterprise: str, first: str, last: str) -> set[str]:
        rows = await self.db.all(SEALED_SQL, enterprise, first, last)
        return {r[0] for r in rows}

    async def funnel_sent(self, enterprise: str, start: float, end: float) -> list[tuple[str, str, int, int]]:
        """(day, channel, sent, delivered) of the attempts started in [start, end), from the attempts."""
        rows = await self.db.all(SENT_SQL[self.db.name], enterprise, start, end)
        return [(r[0], r[1], int(r[2] or 0), int(r[3] or 0)) for r in rows]

    async def funnel_seal(
        self, enterprise: str, days: list[str], counts: list[tuple[str, str, int, int]]
    ) -> None:
        """Keep the sent and delivered counts of `days` (every channel's, from `funnel_sent`) and
        mark them sealed; a repeat writes the same values."""
        sealing = set(days)
        rows = [(enterprise, day, ch, sent, dlv) for day, ch, sent, dlv in counts if day in sealing]
        async with self.db.transaction():
            if rows:
                await self.db.run_many(SEAL_COUNTS_SQL, rows)
            await self.db.run_many(SEAL_SQL, [(enterprise, day) for day in sorted(sealing)])
