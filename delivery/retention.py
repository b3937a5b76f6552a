"""How long the records that grow with every call event are kept, and the upkeep that keeps it
so: day partitions made ahead and dropped after their retention (PostgreSQL), old rows deleted a
day at a time in small batches (SQLite).

Every worker runs the upkeep (`run`) hourly and `mingpian prune` runs it at will: all of them at
once is safe (rows/partitions.py: each change under the table's advisory lock, what another did
is found done). A report asks `kept_since(table)` for the first day a table still holds, to say
when its range starts before it (the rows before were dropped, not absent).

Which day a row belongs to (its partition): calls, message ids and receipts the China day they
were written; deliveries the China day they were created (their raw events share it); attempts
the day they started; charges and taps the day they count for. A lookup by id (a delivery, an
attempt, a message id) names no day: it probes the index of each kept partition, so its cost
grows with the days kept (bounded by the retention), not with the rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from infra.outage import log_failure

from .drivers import Driver
from .metering.ledger import day_of
from .rows.partitions import Aged, PartitionRows

log = logging.getLogger("mingpian.delivery")

AHEAD = 2  # days of partitions made ahead of today (and yesterday's, for a clock behind)
EVERY = 3600.0  # s between two rounds of the upkeep
RETRY = 60.0  # s before a failed round is tried again

# Each table: its default days kept, and how SQLite finds a row's age.
TABLES: dict[str, Aged] = {
    "message_ids": Aged(
        "started", "time", "message_id", via="attempts", on="attempts.id = message_ids.attempt"
    ),
    "receipts": Aged("at", "time", "message_id"),
    "calls": Aged("at", "time", "call_id, phase"),
    "attempts": Aged("started", "time"),
    "deliveries": Aged("created", "time"),
    "charges": Aged("day", "day", "key"),
    "taps": Aged("day", "day", "enterprise, card, button, day"),
    "delivery_events": Aged("day", "day", "day, delivery, step, kind, key"),
}
# Days kept when the settings do not say (delivery/config.py `retention_*`):
DEFAULT_DAYS = {
    "message_ids": 7,  # receipts come within the SMSC's validity period (at most 3 days)
    "receipts": 7,
    "calls": 7,  # a repeated call event is recognised within 2 days (the Redis claim)
    "attempts": 90,  # read with their delivery: kept as long
    "deliveries": 90,  # GET /api/calls/{id}, the delivery report, a quarter of complaints
    "charges": 400,  # billing: a year and a month of disputes and audits
    "taps": 400,  # one row per card, button and day: small
    "delivery_events": 35,  # raw events (delivery/events.py); the rollups are kept for good
}
OPTIONS = {"deliveries": "WITH (fillfactor = 80)"}  # as the table was (migration 0008)


@dataclass(frozen=True, slots=True)
class Pruned:
    """A day of a table dropped (PostgreSQL: its partition) or deleted (SQLite), and its rows
    (PostgreSQL: the planner's estimate)."""

    table: str
    day: str
    rows: int


def first_kept(days: int, now: float) -> str:
    """The first China day kept when `days` days are (today is one of them)."""
    return (date.fromisoformat(day_of(now)) - timedelta(days=days - 1)).isoformat()


class Retention:
    """The retention of one store's growing tables."""

    def __init__(self, db: Driver, days: Mapping[str, int] | None = None, ahead: int = AHEAD) -> None:
        self.rows = PartitionRows(db)
        self.days = {**DEFAULT_DAYS, **(days or {})}
        self.ahead = ahead
        self._down = False

    def kept_since(self, table: str, now: float | None = None) -> str:
        """The first day `table` still holds: a report whose range starts before it says so."""
        return first_kept(self.days[table], time.time() if now is None else now)

    async def make_ahead(self, table: str, now: float) -> list[str]:
        """PostgreSQL: the partitions of yesterday, today and the days ahead (the days made here)."""
        today = date.fromisoformat(day_of(now))
        have = await self.rows.days(table)
        made = []
        for i in range(-1, self.ahead + 1):
            day = (today + timedelta(days=i)).isoformat()
            if day not in have and await self.rows.make(table, day, OPTIONS.get(table, "")):
                made.append(day)
        return made

    async def prune(self, table: str, now: float) -> list[Pruned]:
        """Drop (PostgreSQL) or delete (SQLite) the days of `table` before its retention."""
        keep = first_kept(self.days[table], now)
        out: list[Pruned] = []
        if self.rows.db.name == "postgresql":
            for day in sorted(await self.rows.days(table)):
                if day < keep and (n := await self.rows.drop(table, day)) is not None:
                    out.append(Pruned(table, day, n))
            if n := await self.rows.prune_default(table, keep):
                out.append(Pruned(table, "default", n))
            return out
        keep_at = (date.fromisoformat(keep) - date(1970, 1, 1)).days * 86400.0 - 8 * 3600  # its 00:00 CST
        while (got := await self.rows.delete_day(table, TABLES[table], keep, keep_at)) is not None:
            out.append(Pruned(table, *got))
        return out

    async def maintain(self, now: float | None = None, tables: tuple[str, ...] = ()) -> list[Pruned]:
        """One round: partitions made ahead, then every table's expired days (`tables`: only
        these). What was pruned."""
        now = time.time() if now is None else now
        out: list[Pruned] = []
        for table in tables or tuple(TABLES):
            if self.rows.db.name == "postgresql":
                await self.make_ahead(table, now)
            out += await self.prune(table, now)
        for p in out:
            log.info("retention: %s %s pruned (%d rows)", p.table, p.day, p.rows)
        return out

    async def run(self) -> None:
        """The server's upkeep: a round now and every `EVERY` s; a failure is logged once per
        outage (infra/outage.py) and tried again in a minute."""
        while True:
            try:
                await self.maintain()
            except Exception as exc:
                if not self._down:
                    log_failure(log, exc, "retention: upkeep failed; tried again in a minute")
                self._down = True
                await asyncio.sleep(RETRY)
                continue
            self._down = False
            await asyncio.sleep(EVERY)


def days_of(config: Any) -> dict[str, int]:
    """Each table's days kept, from a DeliveryConfig (`<table>_retention_days`,
    `event_retention_days` for the raw events)."""
    out = {t: int(getattr(config, f"{t}_retention_days")) for t in DEFAULT_DAYS if t != "delivery_events"}
    out["delivery_events"] = int(config.event_retention_days)
    return out
