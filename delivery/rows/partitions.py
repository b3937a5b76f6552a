"""Day partitions of the tables that grow with traffic, and their retention, through a driver.

PostgreSQL: each table is LIST-partitioned by `day` (a China day, 'YYYY-MM-DD'; migrations 0011
and 0014), with a default partition; a day's partition is made ahead and dropped whole once past
its retention. Every statement that changes the partitions runs under the table's advisory lock,
so workers (and `mingpian prune`) doing the same upkeep at once queue and find it done. A drop
waits at most `LOCK_WAIT` for its lock and is tried again later rather than queueing intake
behind it (a statement that waits on a lock makes every later one on the table wait too).

SQLite: no partitions; old rows are deleted in batches of `BATCH`, a day at a time, the event
loop let run between batches, so intake waits at most one batch.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, timedelta

from ..drivers import Driver

PARTITIONS_SQL = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1"
)
BATCH = 5000  # rows one SQLite delete takes (a few milliseconds of the one writer's time)
LOCK_WAIT = "25ms"  # how long a drop waits for its table's lock (intake queues behind it meanwhile)
DROP_TRIES = 10  # then the next round tries again


@dataclass(frozen=True, slots=True)
class Aged:
    """How a table's rows are found by age on SQLite: `column` holds a China day ('day') or a
    Unix time ('time'); `via` a table whose time column says a row's age (message ids: their
    attempt's start), joined by `on`."""

    column: str
    kind: str  # "day" | "time"
    key: str = "rowid"  # what names a row (the primary key of a WITHOUT ROWID table)
    via: str = ""
    on: str = ""


def partition_name(parent: str, day: str) -> str:
    """The partition table of an ISO day (checked: only digits and dashes reach the SQL)."""
    if len(day) != 10 or not day.replace("-", "").isdigit():
        raise ValueError(f"not an ISO day: {day!r}")
    if not parent.replace("_", "").isalpha():
        raise ValueError(f"not a table name: {parent!r}")
    return f"{parent}_{day.replace('-', '')}"


def day_of_partition(parent: str, name: str) -> str | None:
    """The day a partition holds (None: the default partition, or not one of the days)."""
    digits = name.removeprefix(parent + "_")
    if len(digits) != 8 or not digits.isdigit():
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


class PartitionRows:
    """The partitions of one store's day-partitioned tables (PostgreSQL), and the batched
    deletes of old rows (SQLite)."""

    def __init__(self, db: Driver) -> None:
        self.db = db
        self.tries = 0  # the last drop's tries for its lock
        self.held = 0.0  # s from the last drop asking for its table's lock to its commit

    async def days(self, parent: str) -> set[str]:
        """The days `parent` has a partition of."""
        rows = await self.db.all(PARTITIONS_SQL, parent)
        return {d for r in rows if (d := day_of_partition(parent, r[0])) is not None}

    async def make(self, parent: str, day: str, options: str = "") -> bool:
        """The partition of `day`, made once whichever worker gets there first (True: made here).
        Rows of that day already in the default partition (its partition was made too late) are
        moved into it in the same transaction."""
        name = partition_name(parent, day)
        async with self.db.transaction():
            await self.db.lock(f"{parent}_partitions")
            if day in await self.days(parent):
                return False
            stray = await self.db.one(f"SELECT 1 FROM {parent}_default WHERE day = $1 LIMIT 1", day)
            if stray is None:
                await self.db.run(
                    f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES IN ('{day}') {options}"
                )
                return True
            await self.db.run(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS) {options}")
            await self.db.run(
                f"WITH m AS (DELETE FROM {parent}_default WHERE day = $1 RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM m",
                day,
            )
            await self.db.run(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES IN ('{day}')")
            return True

    async def drop(self, parent: str, day: str) -> int | None:
        """Drop the partition of `day` (its rows, counted first); None if another worker dropped
        it, or the table's lock stayed busy for every try (the next round tries again)."""
        name = partition_name(parent, day)
        for i in range(DROP_TRIES):
            self.tries = i + 1
            try:
                t0 = 0.0
                async with self.db.transaction():
                    await self.db.lock(f"{parent}_partitions")
                    if day not in await self.days(parent):
                        return None
                    row = await self.db.one("SELECT reltuples::bigint FROM pg_class WHERE relname = $1", name)
                    rows = max(int(row[0]), 0) if row else 0
                    await self.db.run(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                    t0 = time.monotonic()
                    await self.db.run(f"DROP TABLE {name}")
                self.held = time.monotonic() - t0  # its lock asked for, had, and let go at commit
                return rows
            except Exception as e:
                if "lock timeout" not in str(e) and type(e).__name__ != "LockNotAvailableError":
                    raise
                await asyncio.sleep(0.05 * (i + 1))
        return None

    async def prune_default(self, parent: str, keep: str) -> int:
        """Delete the days before `keep` from the default partition (rows of a day whose
        partition was not made in time, or was dropped already)."""
        return await self.db.run(f"DELETE FROM {parent}_default WHERE day < $1", keep)

    async def delete_day(self, table: str, aged: Aged, keep: str, keep_at: float) -> tuple[str, int] | None:
        """SQLite: delete the oldest day of `table` if it is before `keep` (the first kept day;
        `keep_at` its start as a Unix time), in batches; (that day, rows deleted) or None when
        nothing is that old."""
        from ..metering.ledger import day_of

        col = f"{aged.via or table}.{aged.column}"
        frm = f"{table} JOIN {aged.via} ON {aged.on}" if aged.via else table
        row = await self.db.one(f"SELECT min({col}) FROM {frm}")
        if row is None or row[0] is None:
            return None
        oldest = row[0]
        day = oldest if aged.kind == "day" else day_of(float(oldest))
        if day >= keep:
            return None
        bound: str | float
        if aged.kind == "day":
            bound = next_day(day)
        else:
            start = float(oldest) - ((float(oldest) + 8 * 3600) % 86400)
            bound = min(start + 86400, keep_at)
        keys = [k.strip() for k in aged.key.split(",")]
        row_key = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
        sql = (
            f"DELETE FROM {table} WHERE {row_key} IN (SELECT {', '.join(f'{table}.{k}' for k in keys)} "
            f"FROM {frm} WHERE {col} < $1 LIMIT {BATCH})"
        )
        total = 0
        while True:
            n = await self.db.run(sql, bound)
            total += n
            await self.db.durable()
            if n < BATCH:
                return day, total
            await asyncio.sleep(0)  # intake runs between batches
