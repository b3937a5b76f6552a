"""What the card funnel report (delivery/eventfunnel.py) reads of the event rollups: a month of a
big enterprise must answer within a couple of hundred milliseconds however many raw events it had.

The database does the grouping: each statement groups by the report's own grouping (variant,
version, channel, card or none) and returns a few rows per bucket, not one per rollup key:
- `series`: per bucket (hour or day) and group, a column per kind: the counts the report draws
  over time (button rows left out; "sent" only at step 0, a fall-over's attempt not counting
  twice);
- `totals`: per group, kind, fall-over (step > 0) and button, over the whole range, read at the
  day grain whenever the range is whole days (30 rows a month per key instead of 720);
- `latency`: per group, kind and histogram bin, the times to open and to tap (day grain too).
Each card is read along the primary key (enterprise, card, grain, bucket, …), the cards given as a
list: for every card, the cards of the range come first from the day rows through
`event_rollups_days` (migrations sqlite 0014, postgresql 0013), so no statement walks the
enterprise's minute rows. The grain and grouping are put in the statement from fixed words (the
planner sees the grain; nothing from a request reaches the text).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..drivers import Driver

GROUP_COLUMN = {"variant": "variant", "version": "version", "channel": "channel", "card": "card", "": "''"}
GRAIN_WORD = {"h": "'h'", "d": "'d'"}
PARALLEL = 4  # statements at once for a report of several cards (PostgreSQL)
# The cards with a day row in [$2, $3) (the day buckets overlapping a range).
CARDS_SQL = (
    "SELECT DISTINCT card FROM event_rollups WHERE enterprise = $1 AND grain = 'd' AND bucket >= $2 "
    "AND bucket < $3"
)


def _where(grain: str) -> str:
    """$1 the enterprise, $2 its cards (a list), $3–$4 the range."""
    return (
        f"enterprise = $1 AND card = ANY($2::text[]) AND grain = {GRAIN_WORD[grain]} "
        "AND bucket >= $3 AND bucket < $4"
    )


def series_sql(by: str, grain: str, kinds: tuple[str, ...]) -> str:
    """One row per bucket and group, a column per kind (a fall-over's "sent" left out)."""
    g = GROUP_COLUMN[by]
    per_kind = ", ".join(  # FILTER: a fifth cheaper than CASE per row on both
        f"coalesce(sum(n) FILTER (WHERE kind = '{k}'{' AND step = 0' if k == 'sent' else ''}), 0)::bigint"
        for k in kinds
    )
    return (
        f"SELECT bucket, {g}, {per_kind} FROM event_rollups WHERE {_where(grain)} AND button = '' "
        "GROUP BY 1, 2"
    )


def totals_sql(by: str, grain: str) -> str:
    g = GROUP_COLUMN[by]
    return (
        f"SELECT {g}, kind, CASE WHEN step > 0 THEN 1 ELSE 0 END, button, sum(n)::bigint FROM event_rollups "
        f"WHERE {_where(grain)} GROUP BY 1, 2, 3, 4"
    )


def latency_sql(by: str, grain: str) -> str:
    g = GROUP_COLUMN[by]
    return (
        f"SELECT {g}, kind, bin, sum(n)::bigint FROM event_latency WHERE {_where(grain)} "
        "AND kind IN ('opened', 'tapped') GROUP BY 1, 2, 3"
    )


class EventReports:
    """The funnel report's reads of one store, through its driver."""

    def __init__(self, db: Driver) -> None:
        self.db = db

    async def _read(
        self, sql: str, enterprise: str, cards: list[str], since: float, until: float
    ) -> list[Any]:
        """The rows of `sql` for `cards`. On PostgreSQL several cards are read by up to
        `PARALLEL` statements at once, each on its own connection of the pool (a month of a
        card by hour is tens of thousands of rollup rows to add up: the server's cores share
        them); their rows are for the caller to add up (a group may come from several)."""
        if self.db.name != "postgresql" or len(cards) < 2:
            return await self.db.all(sql, enterprise, cards, since, until)
        parts = [cards[i::PARALLEL] for i in range(min(PARALLEL, len(cards)))]
        answers = await asyncio.gather(*(self.db.all(sql, enterprise, p, since, until) for p in parts))
        return [r for rows in answers for r in rows]

    async def cards(self, enterprise: str, since: float, until: float) -> list[str]:
        """The cards with rollups in [since, until) (`since` the start of a day)."""
        return sorted(r[0] for r in await self.db.all(CARDS_SQL, enterprise, since, until))

    async def series(
        self, enterprise: str, cards: list[str], by: str, grain: str, since: float, until: float,
        kinds: tuple[str, ...],
    ) -> list[Any]:  # fmt: skip
        """(bucket, group, then the count of each of `kinds`) rows of `cards`."""
        return await self._read(series_sql(by, grain, kinds), enterprise, cards, since, until)

    async def totals(
        self, enterprise: str, cards: list[str], by: str, grain: str, since: float, until: float
    ) -> list[Any]:
        """(group, kind, 1 after a fall-over else 0, button, count) rows."""
        return await self._read(totals_sql(by, grain), enterprise, cards, since, until)

    async def latency(
        self, enterprise: str, cards: list[str], by: str, grain: str, since: float, until: float
    ) -> list[Any]:
        """(group, kind, bin, count) rows of the times to open and to tap."""
        return await self._read(latency_sql(by, grain), enterprise, cards, since, until)
