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
from ..records import Attempt
from .calls import check_fields, update_row_sql

ATTEMPT_COLUMNS = (
    "id, delivery, step, channel, state, segments, units, started, deadline, done, detail, revoke"
)
ATTEMPT_WIDTH = len(ATTEMPT_COLUMNS.split(", "))
ATTEMPT_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 AND step=$2"
ATTEMPTS_OF_SQL = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 ORDER BY step"
# An attempt with its message ids and their receipts' stats: one read.
RECEIPTS_OF_SQL = (
    f"SELECT {', '.join('a.' + c for c in ATTEMPT_COLUMNS.split(', '))}, m.message_id, r.stat "
    "FROM attempts a LEFT JOIN message_ids m ON m.attempt = a.id "
    "LEFT JOIN receipts r ON r.message_id = m.message_id WHERE a.id=$1"
)
# The columns of an attempt row as queued for ATTEMPTS_SQL: an update of an attempt whose insert
# is in the same flush is folded into the inserted row (its units, its state after the submit).
ATTEMPT_ROW = ("id", "delivery", "step", "channel", "state", "segments", "units", "started", "deadline",
               "done", "detail")  # fmt: skip
ATTEMPT_AT = {c: i for i, c in enumerate(ATTEMPT_ROW)}
ID_BLOCK = 256  # attempt ids taken from the sequence at a time (one round trip per block)
NEXT_IDS = "SELECT nextval(pg_get_serial_sequence('attempts', 'id')) FROM generate_series(1, $1)"


def attempt_of(r: Sequence[Any]) -> Attempt:
    return Attempt(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])


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


@dataclass(frozen=True, slots=True)
class MessageId:
    """A message id the SMSC gave to an attempt's submit."""

    message_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt as the SMSC sent it."""

    message_id: str
    stat: str
    at: float
    source: str


@dataclass(frozen=True, slots=True)
class UpdateAttempt:
    """Columns of an attempt set to values (names from calls.UPDATE_TYPES only)."""

    table: ClassVar[str] = "attempts"
    id: int
    values: dict[str, Any]


ATTEMPT_ROW_SQL = (
    "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL,'')"
)
ATTEMPTS_SQL = (
    "INSERT INTO attempts (id, delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail) SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], "
    "$7::int[], $8::float8[], $9::float8[], $10::float8[], $11::text[]) ON CONFLICT DO NOTHING"
)
MESSAGE_ID_ROW_SQL = "INSERT INTO message_ids VALUES ($1,$2,NULL) ON CONFLICT DO NOTHING"
MESSAGE_IDS_SQL = (
    "INSERT INTO message_ids (message_id, attempt, stat) SELECT m, a, NULL "
    "FROM unnest($1::text[], $2::bigint[]) AS u(m, a) ON CONFLICT DO NOTHING"
)
RECEIPT_ROW_SQL = (
    "INSERT INTO receipts (message_id, stat, at, source) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
)
RECEIPTS_SQL = (
    "INSERT INTO receipts (message_id, stat, at, source) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) ON CONFLICT DO NOTHING"
)


class AttemptRows:
    db: Driver
    _ids: list[int]  # attempt ids taken from the sequence, not used yet (PostgreSQL)
    _ids_coming: asyncio.Future[None] | None  # the block being fetched

    async def attempt(self, delivery: str, step: int) -> Attempt | None:
        row = await self.db.one(ATTEMPT_SQL, delivery, step)
        return attempt_of(row) if row else None

    async def attempt_receipts(self, id: int) -> tuple[Attempt | None, int, list[str]]:
        """The attempt, its message ids' count and the receipt stats they got: one read."""
        rows = await self.db.all(RECEIPTS_OF_SQL, id)
        if not rows:
            return None, 0, []
        n = ATTEMPT_WIDTH  # the message id and the stat follow the attempt's columns
        total = sum(1 for r in rows if r[n] is not None)
        return attempt_of(rows[0]), total, [r[n + 1] for r in rows if r[n + 1] is not None]

    async def attempts(self, delivery: str) -> list[Attempt]:
        rows = await self.db.all(ATTEMPTS_OF_SQL, delivery)
        return [attempt_of(r) for r in rows]

    async def add_attempt(
        self, delivery: str, step: int, channel: str, segments: int, units: int, deadline: float
    ) -> Attempt:
        now = time.time()
        w = self.db.writes
        if w is None:
            id_ = await self.db.insert(
                ATTEMPT_ROW_SQL, delivery, step, channel, "sending", segments, units, now, deadline
            )
        else:
            id_ = await self._attempt_id()
            w.queue(
                InsertAttempt(
                    id_, delivery, step, channel, "sending", segments, units, now, deadline, None, ""
                )
            )
        return Attempt(id_, delivery, step, channel, "sending", segments, units, now, deadline, None, "")

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

    async def update_attempt(self, id: int, **fields: Any) -> None:
        check_fields("attempts", fields)
        if self.db.writes is not None:
            self.db.writes.queue(UpdateAttempt(id, fields))
        else:
            await self.db.run(update_row_sql("attempts", tuple(fields)), *fields.values(), id)

    async def add_message_ids(self, attempt: int, ids: list[str]) -> None:
        w = self.db.writes
        if w is None:
            await self.db.run_many(MESSAGE_ID_ROW_SQL, [(m, attempt) for m in ids])
            return
        for m in ids:
            w.queue(MessageId(m, attempt))

    async def receipt(self, message_id: str, stat: str, source: str = "") -> None:
        """Store a receipt (a redelivery of one already stored changes nothing); `source` is the
        recipient it is about (E.164), where the gateway says."""
        if self.db.writes is not None:
            self.db.writes.queue(Receipt(message_id, stat, time.time(), source))
        else:
            await self.db.run(RECEIPT_ROW_SQL, message_id, stat, time.time(), source)

    async def adopt_receipts(self, attempt: int, recipient: str, since: float, limit: int) -> int:
        """Receipts about `recipient` stored since `since` that match no message id: recorded as
        `attempt`'s (at most `limit`), for an attempt whose message ids a crash lost. How many."""
        rows = await self.db.all(
            "INSERT INTO message_ids (message_id, attempt, stat) SELECT r.message_id, $1, NULL "
            "FROM receipts r WHERE r.source = $2 AND r.at >= $3 AND NOT EXISTS "
            "(SELECT 1 FROM message_ids m WHERE m.message_id = r.message_id) ORDER BY r.at LIMIT $4 "
            "ON CONFLICT DO NOTHING RETURNING message_id",
            attempt, recipient, since, limit,
        )  # fmt: skip
        return len(rows)

    async def attempt_of_message(self, message_id: str) -> int | None:
        """Message ids are written with awaited commits or kept in memory until they commit (those
        this process submitted): no need to wait for the group commit."""
        rows = await self.db.committed("SELECT attempt FROM message_ids WHERE message_id=$1", message_id)
        return int(rows[0][0]) if rows else None

    async def waiting_attempts_of(self, message_ids: list[str]) -> list[int]:
        """The attempts of these message ids that still wait for a receipt."""
        rows = await self.db.all(
            "SELECT DISTINCT a.id FROM message_ids m JOIN attempts a ON a.id = m.attempt "
            "WHERE m.message_id = ANY($1::text[]) AND a.state IN ('submitted', 'unknown')",
            message_ids,
        )
        return sorted(int(r[0]) for r in rows)
