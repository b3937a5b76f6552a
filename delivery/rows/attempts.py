"""Attempts (one per channel a delivery tries), the message ids an SMSC gave their submits, and
the receipts that came back.

As in calls.py, the hot-path writes stand here in both forms: a statement run at once on SQLite,
a typed record for PostgreSQL's group commit with the `unnest` statement a flush runs for it.
On PostgreSQL a new attempt's id comes from the sequence ahead of its write (a block of ids per
round trip), so the row can ride the group commit; SQLite numbers the row as it inserts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..drivers import Driver
from ..metering.ledger import day_of
from ..records import Attempt
from .calls import check_fields, update_row_sql

ATTEMPT_COLUMNS = (
    "id, delivery, step, channel, state, segments, units, started, deadline, done, detail, revoke, day"
)
ATTEMPT_WIDTH = len(ATTEMPT_COLUMNS.split(", "))
# With the delivery's day (what the chain carries) PostgreSQL reads that day's partition alone;
# without it, every kept day's (an API read of a delivery by id).
ATTEMPT_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 AND step=$2 AND day=$3"
ATTEMPT_ANY_DAY_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 AND step=$2"
ATTEMPTS_OF_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 ORDER BY step"
ATTEMPTS_OF_DAY_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 AND day=$2 ORDER BY step"
# An attempt with its message ids and their receipts' stats: one read. A message id carries its
# attempt's day, so with the day given one partition of each is read; receipts are kept by the
# day they arrived (a receipt names only its message id) and probed in each kept day (7).
RECEIPTS_OF = (
    f"SELECT {', '.join('a.' + c for c in ATTEMPT_COLUMNS.split(', '))}, m.message_id, r.stat "
    "FROM attempts a LEFT JOIN message_ids m ON m.attempt = a.id{} "
    "LEFT JOIN receipts r ON r.message_id = m.message_id WHERE a.id=$1{}"
)
RECEIPTS_OF_SQL = RECEIPTS_OF.format(" AND m.day = $2", " AND a.day = $2")
RECEIPTS_OF_ANY_DAY_SQL = RECEIPTS_OF.format("", "")
# The columns of an attempt row as queued for ATTEMPTS_SQL: an update of an attempt whose insert
# is in the same flush is folded into the inserted row (its units, its state after the submit).
ATTEMPT_ROW = ("id", "delivery", "step", "channel", "state", "segments", "units", "started", "deadline",
               "done", "detail", "day")  # fmt: skip
ATTEMPT_AT = {c: i for i, c in enumerate(ATTEMPT_ROW)}
ID_BLOCK = 256  # attempt ids taken from the sequence at a time (one round trip per block)
NEXT_IDS = "SELECT nextval(pg_get_serial_sequence('attempts', 'id')) FROM generate_series(1, $1)"


def attempt_of(r: Sequence[Any]) -> Attempt:
    return Attempt(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12])


# -- the group commit's records (PostgreSQL) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InsertAttempt:
    """A new attempt row; its updates queued for the same flush are folded into it."""

    id: int
    delivery: str
    step: int
    channel: str
    state: str
    segments: int
    units: int
    started: float
    deadline: float
    done: float | None
    detail: str
    day: str = ""  # its delivery's day: a retried flush, or a retry after midnight, meets its key


@dataclass(frozen=True, slots=True)
class MessageId:
    """A message id the SMSC gave to an attempt's submit (`day`: the attempt's)."""

    message_id: str
    attempt: int
    day: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt as the SMSC sent it (`day`: the day it arrived)."""

    message_id: str
    stat: str
    at: float
    source: str
    day: str = ""


@dataclass(frozen=True, slots=True)
class UpdateAttempt:
    """Columns of an attempt set to values (names from calls.UPDATE_TYPES only)."""

    table: ClassVar[str] = "attempts"
    id: int
    values: dict[str, Any]
    day: str = ""  # the attempt's day ("": not known, every partition probed)


# Every insert writes its row's day (never the column's default, the day it happens to run).
ATTEMPT_ROW_SQL = (
    "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail, day) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL,'',$9)"
)
ATTEMPTS_SQL = (
    "INSERT INTO attempts (id, delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail, day) SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], "
    "$6::int[], $7::int[], $8::float8[], $9::float8[], $10::float8[], $11::text[], $12::text[]) "
    "ON CONFLICT DO NOTHING"
)
MESSAGE_ID_ROW_SQL = (
    "INSERT INTO message_ids (message_id, attempt, stat, day) VALUES ($1,$2,NULL,$3) ON CONFLICT DO NOTHING"
)
MESSAGE_IDS_SQL = (
    "INSERT INTO message_ids (message_id, attempt, stat, day) SELECT m, a, NULL, d "
    "FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(m, a, d) ON CONFLICT DO NOTHING"
)
RECEIPT_ROW_SQL = (  # SQLite's receipts carry no day (one table, keyed by the message id)
    "INSERT INTO receipts (message_id, stat, at, source) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
)
RECEIPTS_SQL = (
    "INSERT INTO receipts (message_id, stat, at, source, day) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[]) "
    "ON CONFLICT DO NOTHING"
)


class AttemptRows:
    db: Driver
    _ids: list[int]  # attempt ids taken from the sequence, not used yet (PostgreSQL)
    _ids_coming: asyncio.Future[None] | None  # the block being fetched

    async def attempt(self, delivery: str, step: int, day: str = "") -> Attempt | None:
        """`day`: the delivery's (one partition read); "" probes every kept day's, as does a miss
        (rare: a chain resumed before its step's attempt; an attempt written before attempts took
        their delivery's day, migration 0014 gave it the day it started)."""
        row = await self.db.one(ATTEMPT_SQL, delivery, step, day) if day else None
        if row is None:
            row = await self.db.one(ATTEMPT_ANY_DAY_SQL, delivery, step)
        return attempt_of(row) if row else None

    async def attempt_receipts(self, id: int, day: str = "") -> tuple[Attempt | None, int, list[str]]:
        """The attempt, its message ids' count and the receipt stats they got: one read. A
        receipt stored twice (its SMSC sent it again on another day: a row each) counts once."""
        rows = await self.db.all(RECEIPTS_OF_SQL, id, day) if day else []
        if not rows:  # no day, or not that day's (a message id written before they took their attempt's)
            rows = await self.db.all(RECEIPTS_OF_ANY_DAY_SQL, id)
        if not rows:
            return None, 0, []
        n = ATTEMPT_WIDTH  # the message id and the stat follow the attempt's columns
        seen: dict[str, list[str]] = {}
        for r in rows:
            if r[n] is not None:
                stats = seen.setdefault(r[n], [])
                if r[n + 1] is not None and r[n + 1] not in stats:
                    stats.append(r[n + 1])
        return attempt_of(rows[0]), len(seen), [s for stats in seen.values() for s in stats]

    async def attempts(self, delivery: str, day: str = "") -> list[Attempt]:
        if day:
            rows = await self.db.all(ATTEMPTS_OF_DAY_SQL, delivery, day)
        else:
            rows = await self.db.all(ATTEMPTS_OF_SQL, delivery)
        return [attempt_of(r) for r in rows]

    async def add_attempt(
        self,
        delivery: str,
        step: int,
        channel: str,
        segments: int,
        units: int,
        deadline: float,
        day: str = "",
    ) -> Attempt:
        """`day`: the delivery's, which the attempt's rows share (written, so a retried write
        meets its key whenever it runs); "" only where no delivery day is known (today's)."""
        now = time.time()
        day = day or day_of(now)
        w = self.db.writes
        if w is None:
            id_ = await self.db.insert(
                ATTEMPT_ROW_SQL, delivery, step, channel, "sending", segments, units, now, deadline, day
            )
        else:
            id_ = await self._attempt_id()
            w.queue(
                InsertAttempt(
                    id_, delivery, step, channel, "sending", segments, units, now, deadline, None, "", day
                )
            )
        return Attempt(
            id_, delivery, step, channel, "sending", segments, units, now, deadline, None, "", "", day
        )

    async def _attempt_id(self) -> int:
        """The next attempt id (PostgreSQL). One block is fetched at a time, whoever needs ids
        meanwhile waits for it, and the next block is fetched in the background while a quarter
        of this one is left."""
        while not self._ids:
            await asyncio.shield(self._refill_ids())
        if len(self._ids) < ID_BLOCK // 4:
            self._refill_ids()
        return self._ids.pop()

    def _refill_ids(self) -> asyncio.Future[None]:
        if self._ids_coming is None:
            self._ids_coming = fut = asyncio.ensure_future(self._fetch_ids())
            # a background fetch that failed is retried by the next caller; nobody else hears it
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._ids_coming

    async def _fetch_ids(self) -> None:
        assert self.db.writes is not None
        try:
            ids = await self.db.writes.fetch_ids(NEXT_IDS, ID_BLOCK)
            self._ids = sorted([*self._ids, *ids], reverse=True)  # pop(): smallest first
        finally:
            self._ids_coming = None

    async def update_attempt(self, id: int, *, day: str = "", **fields: Any) -> None:
        """`day`: the attempt's, so PostgreSQL updates that day's partition alone ("": every
        kept day's is probed for the id)."""
        check_fields("attempts", fields)
        if self.db.writes is not None:
            self.db.writes.queue(UpdateAttempt(id, fields, day))
        else:
            await self.db.run(update_row_sql("attempts", tuple(fields)), *fields.values(), id)

    async def add_message_ids(self, attempt: int, ids: list[str], day: str = "") -> None:
        """`day`: the attempt's, which its message ids share (a receipt's lookup then finds the
        attempt's day with its id)."""
        day = day or day_of(time.time())
        w = self.db.writes
        if w is None:
            await self.db.run_many(MESSAGE_ID_ROW_SQL, [(m, attempt, day) for m in ids])
            return
        for m in ids:
            w.queue(MessageId(m, attempt, day))

    async def receipt(self, message_id: str, stat: str, source: str = "") -> None:
        """Store a receipt (a redelivery of one already stored changes nothing; one redelivered on
        a later day is a second row on PostgreSQL, counted once: `attempt_receipts`); `source` is
        the recipient it is about (E.164), where the gateway says. Its day is the day it arrived:
        all an SMSC's receipt names is the message id."""
        now = time.time()
        if self.db.writes is not None:
            self.db.writes.queue(Receipt(message_id, stat, now, source, day_of(now)))
        else:
            await self.db.run(RECEIPT_ROW_SQL, message_id, stat, now, source)

    async def adopt_receipts(
        self, attempt: int, recipient: str, since: float, limit: int, day: str = ""
    ) -> int:
        """Receipts about `recipient` stored since `since` that match no message id: recorded as
        `attempt`'s (at most `limit`, with its `day`), for an attempt whose message ids a crash
        lost. How many."""
        rows = await self.db.all(
            "INSERT INTO message_ids (message_id, attempt, stat, day) SELECT r.message_id, $1, NULL, $5 "
            "FROM receipts r WHERE r.source = $2 AND r.at >= $3 AND NOT EXISTS "
            "(SELECT 1 FROM message_ids m WHERE m.message_id = r.message_id) ORDER BY r.at LIMIT $4 "
            "ON CONFLICT DO NOTHING RETURNING message_id",
            attempt, recipient, since, limit, day or day_of(since),
        )  # fmt: skip
        return len(rows)

    async def attempt_of_message(self, message_id: str) -> tuple[int, str] | None:
        """The attempt a message id was given to, and its day (its updates name it). Looked up by
        the message id alone (all a receipt names): every kept day's partition is probed. Message
        ids are written with awaited commits or kept in memory until they commit (those this
        process submitted): no need to wait for the group commit."""
        rows = await self.db.committed("SELECT attempt, day FROM message_ids WHERE message_id=$1", message_id)
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def waiting_attempts_of(self, message_ids: list[str]) -> list[int]:
        """The attempts of these message ids that still wait for a receipt."""
        rows = await self.db.all(
            "SELECT DISTINCT a.id FROM message_ids m JOIN attempts a ON a.id = m.attempt "
            "WHERE m.message_id = ANY($1::text[]) AND a.state IN ('submitted', 'unknown')",
            message_ids,
        )
        return sorted(int(r[0]) for r in rows)
