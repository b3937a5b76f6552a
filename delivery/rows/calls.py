"""Call events, their deliveries, and the leases that say which worker runs each active chain.

Where the two databases differ, both versions stand here side by side:
- The hot-path writes. On SQLite each is a statement of its own, run at once inside the group
  transaction (groupcommit.py). On PostgreSQL each is a typed record queued for the group commit
  (pgbatch.py, pgflush.py), which runs the records of every call event in flight as one statement:
  the `unnest` form of each write below is what that statement is made of.
- Leases. On PostgreSQL the active chains and their leases are a table (`active_chains`), written
  with the delivery and deleted when it finishes, so the history table carries no changing index.
  One process owns a SQLite file, so every active chain is its own: there `active_chains` is a
  view of the active deliveries, and nothing about leases is stored.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from infra import jsonio

from ..drivers import Driver
from ..metering.ledger import day_of
from ..records import Delivery

DELIVERY_COLUMNS = (
    "id, call_id, phase, enterprise, line, recipient, card, template, kind, data, chain, step, state, "
    "reason, channel, event_at, created, updated, day"
)
# By id alone PostgreSQL probes the id's index in every kept day's partition; with the day (what
# the chain and its updates carry), in one.
DELIVERY_BY_ID = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id=$1"
DELIVERY_BY_ID_DAY = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id=$1 AND day=$2"
DELIVERIES_OF_CALL_SQL = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE call_id=$1 ORDER BY created"
# A pre-call chain asks whether its call was answered or ended just before its first hand-over,
# moments after its call event was accepted; on PostgreSQL the flush that accepted the event read
# the call's phases too, and that read answers if it is younger than this (s). A chain that got
# there later (it waited for a gateway, or was resumed) reads them again.
PHASES_FRESH = 0.25


def delivery_of(r: Sequence[Any]) -> Delivery:
    return Delivery(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], jsonio.loads(r[9]), jsonio.loads(r[10]),
        r[11], r[12], r[13], r[14], r[15], r[16], r[17], r[18],
    )  # fmt: skip


# What a write may update per table, and each column's array type for `unnest`.
UPDATE_TYPES = {
    "deliveries": {"step": "int", "state": "text", "reason": "text", "channel": "text", "updated": "float8"},
    "attempts": {
        "state": "text",
        "units": "int",
        "done": "float8",
        "detail": "text",
        "deadline": "float8",
        "revoke": "text",
    },
}
ID_TYPES = {"deliveries": "text", "attempts": "bigint"}


def check_fields(table: str, fields: dict[str, Any]) -> None:
    bad = set(fields) - UPDATE_TYPES[table].keys()
    if bad:
        raise ValueError(f"cannot update {table}.{sorted(bad)}")


def update_sql(table: str, columns: tuple[str, ...], by_day: bool = True) -> str:
    """One UPDATE for many rows of one day that change the same columns (names from UPDATE_TYPES
    only); the day is the last argument, a constant, so PostgreSQL touches that day's partition
    alone. `by_day` False: rows whose day the caller did not know (every partition probed)."""
    types = UPDATE_TYPES[table]
    kinds = [ID_TYPES[table], *(types[c] for c in columns)]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(kinds, 1))
    sets = ", ".join(f"{c} = u.{c}" for c in columns)
    names = ", ".join(columns)
    day = f" AND t.day = ${len(kinds) + 1}::text" if by_day else ""
    return f"UPDATE {table} t SET {sets} FROM unnest({arrays}) AS u(id, {names}) WHERE t.id = u.id{day}"


@functools.cache
def update_row_sql(table: str, columns: tuple[str, ...]) -> str:
    """The same for one row (names from UPDATE_TYPES only): SQLite's form, one text per shape."""
    sets = ", ".join(f"{c}=${i}" for i, c in enumerate(columns, 1))
    return f"UPDATE {table} SET {sets} WHERE id=${len(columns) + 1}"


# -- the group commit's records (PostgreSQL), each field named as the column it fills ------------
@dataclass(frozen=True, slots=True)
class AcceptCall:
    """A call event (its `calls` row) with its delivery and, when active, its chain's lease: the
    delivery and the lease are written only if the call event is new. `day`: both rows' day, that
    of the event's own time (a retry of the event names the same day, so the same keys)."""

    call_id: str
    phase: str
    event_at: float
    day: str
    id: str
    enterprise: str
    line: str
    recipient: str
    card: str
    template: str
    kind: str
    data: str  # JSON text
    chain: str  # JSON text
    step: int
    state: str
    reason: str
    channel: str
    created: float
    updated: float
    owner: str
    lease_until: float


@dataclass(frozen=True, slots=True)
class RenewLease:
    """A chain's lease extended, if `owner` still holds it (the answer says whether it did)."""

    delivery: str
    owner: str
    lease_until: float


@dataclass(frozen=True, slots=True)
class AskPhases:
    """A read that rides the flush: the phases stored for a call."""

    call_id: str


@dataclass(frozen=True, slots=True)
class UpdateDelivery:
    """Columns of a delivery set to values (names from UPDATE_TYPES only)."""

    table: ClassVar[str] = "deliveries"
    id: str
    values: dict[str, Any]
    day: str = ""  # the delivery's day ("": not known, every partition probed)


# The call event on SQLite: two statements (the second only if the first inserted a row).
CALL_ROW_SQL = "INSERT INTO calls VALUES ($1,$2,$3) ON CONFLICT DO NOTHING"
DELIVERY_ROW_SQL = (
    f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES "
    "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) ON CONFLICT DO NOTHING"
)
# The same on PostgreSQL, for every call event of a flush: three data-modifying CTEs of one statement.
# The call's day is written, never the column's default (the day it happens to be written): a
# retry of the event across midnight must meet its first write's key. Its delivery takes it.
CALLS_SQL = (
    "INSERT INTO calls (call_id, phase, at, day) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) ON CONFLICT DO NOTHING "
    "RETURNING call_id, phase, day"
)
DELIVERIES_SQL = (  # only the deliveries whose call event was new (the CTE `c`: CALLS_SQL)
    "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
    "chain, step, state, reason, channel, event_at, created, updated, owner, lease_until, day) "
    "SELECT d.id, d.call_id, d.phase, d.enterprise, d.line, d.recipient, d.card, d.template, d.kind, d.data, "
    "d.chain, d.step, d.state, d.reason, d.channel, d.event_at, d.created, d.updated, d.owner, "
    "d.lease_until, c.day "
    "FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
    "$12::text[], $13::text[], $14::text[], $15::text[], $16::int[], $17::text[], $18::text[], $19::text[], "
    "$20::float8[], $21::float8[], $22::float8[], $23::text[], $24::float8[]) AS d(id, call_id, phase, "
    "enterprise, line, recipient, card, template, kind, data, chain, step, state, reason, channel, event_at, "
    "created, updated, owner, lease_until) JOIN c ON c.call_id = d.call_id AND c.phase = d.phase "
    "ON CONFLICT DO NOTHING RETURNING id, state, owner, lease_until, created"
)
# A lease runs out by the database's clock, never a worker's: workers whose clocks are apart
# would otherwise take each other's chains early (a worker ahead) or late. A worker sends how
# long it wants the lease (`lease_until - created`, both by its clock) and the database adds it
# to its own now; the worker's own idea of the end (its now + the lease) is never later.
DB_NOW = "extract(epoch FROM clock_timestamp())"
CHAINS_SQL = (  # the new deliveries that are active (the CTE `acc`: DELIVERIES_SQL) and their leases
    "INSERT INTO active_chains (delivery, owner, lease_until) "
    f"SELECT id, owner, {DB_NOW} + (lease_until - created) FROM acc WHERE state = 'active' "
    "ON CONFLICT DO NOTHING"
)
ACCEPT_SQL = f"WITH c AS ({CALLS_SQL}), acc AS ({DELIVERIES_SQL}), ach AS ({CHAINS_SQL}) SELECT id FROM acc"
RENEW_SQL = (  # $3: each lease's length in seconds (by the database's clock: DB_NOW)
    f"UPDATE active_chains a SET lease_until = {DB_NOW} + u.lease FROM unnest($1::text[], $2::text[], "
    "$3::float8[]) AS u(id, owner, lease) WHERE a.delivery = u.id AND a.owner = u.owner "
    "RETURNING a.delivery AS id"
)
FINISHED_SQL = "DELETE FROM active_chains WHERE delivery = ANY($1::text[])"  # deliveries no longer active
# The phases stored for calls (pre-call chains ask before their hand-over): a read that rides the
# flush, answered from the same snapshot as a statement of its own would have been.
PHASES_ROW_SQL = "SELECT phase FROM calls WHERE call_id=$1"
CALL_SEEN_SQL = "SELECT 1 FROM calls WHERE call_id=$1 AND phase=$2 AND day=$3"
PHASES_SQL = "SELECT call_id, phase FROM calls WHERE call_id = ANY($1::text[])"
PHASES_ROWS = "SELECT 'p' AS k, call_id AS id, phase FROM calls WHERE call_id = ANY($1::text[])"
# Active deliveries, and those whose current attempt waits for a receipt: its cost grows with the
# active chains (their own table on PostgreSQL; on SQLite a view of the active deliveries, over a
# partial index), not with the history.
QUEUE = (
    "SELECT count(*), count(a.id) FROM active_chains c JOIN deliveries d ON d.id = c.delivery "
    "LEFT JOIN attempts a ON a.delivery = d.id AND a.step = d.step AND a.state IN ('submitted', 'unknown')"
)


class CallRows:
    db: Driver
    _phases_seen: dict[str, tuple[set[str], float]]  # call id → phases read at acceptance (PostgreSQL)

    async def accept_call(self, d: Delivery, owner: str = "", lease_until: float = 0.0) -> bool:
        """Record a call event (`d.call_id`, `d.phase`, `d.event_at`) and its new delivery, leased
        to `owner` (the worker that will run its chain) until then; False, and nothing written,
        if that call id and phase were seen before. Returns once durable. Both rows take `d.day`
        (set here, if empty, to the day of the event's time)."""
        d.day = d.day or day_of(d.event_at)
        w = self.db.writes
        if w is None:
            if await self.db.run(CALL_ROW_SQL, d.call_id, d.phase, d.event_at) == 0:
                await self._durable_outside_tx()
                return False
            await self.db.run(
                DELIVERY_ROW_SQL,
                d.id, d.call_id, d.phase, d.enterprise, d.line, d.recipient, d.card, d.template, d.kind,
                jsonio.dumps_str(d.data), jsonio.dumps_str(d.chain), d.step, d.state, d.reason, d.channel,
                d.event_at, d.created, d.updated, d.day,
            )  # fmt: skip
            await self._durable_outside_tx()
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        w.queue(
            AcceptCall(
                call_id=d.call_id, phase=d.phase, event_at=d.event_at, day=d.day, id=d.id,
                enterprise=d.enterprise, line=d.line, recipient=d.recipient, card=d.card, template=d.template,
                kind=d.kind,
                data=jsonio.dumps_str(d.data), chain=jsonio.dumps_str(d.chain), step=d.step, state=d.state,
                reason=d.reason, channel=d.channel, created=d.created, updated=d.updated, owner=owner,
                lease_until=lease_until,
            ),
            fut,
        )  # fmt: skip
        if self.db.in_block():
            await w.join()  # inside a block the answer needs the block's own statement
            return await fut
        asked: asyncio.Future[set[str]] | None = None
        if d.phase == "ringing" and d.state == "active":  # its chain asks at once whether the call moved on
            asked = asyncio.get_running_loop().create_future()
            w.queue(AskPhases(d.call_id), asked)  # the same flush answers both
        new = await fut
        if new and asked is not None:
            self._phases_seen[d.call_id] = (asked.result(), time.monotonic())
            while len(self._phases_seen) > 4096:  # chains that never asked (dropped, or gone)
                del self._phases_seen[next(iter(self._phases_seen))]
        return new

    async def _durable_outside_tx(self) -> None:
        """Durable now, unless inside a transaction block (whose end decides)."""
        if not self.db.in_block():
            await self.db.durable()

    async def call_phases(self, call_id: str) -> set[str]:
        """Asked by every pre-call chain before its hand-over. On PostgreSQL the question rides
        the next group commit (one of its statement's rows), so it costs no statement of its own."""
        w = self.db.writes
        if w is not None:
            seen = self._phases_seen.pop(call_id, None)
            if seen is not None and time.monotonic() - seen[1] < PHASES_FRESH:
                return set(seen[0])  # read with the call's acceptance, a moment ago
        if w is None or self.db.in_block():
            return {r[0] for r in await self.db.committed(PHASES_ROW_SQL, call_id)}
        fut: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        w.queue(AskPhases(call_id), fut)
        return await fut

    async def call_seen(self, call_id: str, phase: str, day: str) -> bool:
        """Whether that call event was accepted on `day`: a read of that day's partition alone
        (PostgreSQL; SQLite's `calls` key has no day, so it never needs asking)."""
        return await self.db.one(CALL_SEEN_SQL, call_id, phase, day) is not None

    async def delivery(self, id: str, day: str = "") -> Delivery | None:
        """By id, in its day's partition when `day` is given (else every kept day's is probed)."""
        row = await (self.db.one(DELIVERY_BY_ID_DAY, id, day) if day else self.db.one(DELIVERY_BY_ID, id))
        return delivery_of(row) if row else None

    async def deliveries_of_call(self, call_id: str) -> list[Delivery]:
        rows = await self.db.all(DELIVERIES_OF_CALL_SQL, call_id)
        return [delivery_of(r) for r in rows]

    async def active_deliveries(self) -> list[str]:
        return [r[0] for r in await self.db.all("SELECT delivery FROM active_chains")]

    async def queue(self) -> tuple[int, int]:
        """(active deliveries, of which the current attempt waits for a receipt): for monitoring."""
        row = await self.db.one(QUEUE)
        assert row is not None
        return int(row[0]), int(row[1])

    async def update_delivery(self, id: str, *, day: str = "", **fields: Any) -> None:
        """`day`: the delivery's, so PostgreSQL updates that day's partition alone ("": every
        kept day's is probed for the id)."""
        fields["updated"] = time.time()
        check_fields("deliveries", fields)
        if self.db.writes is not None:
            self.db.writes.queue(UpdateDelivery(id, fields, day))
        else:
            await self.db.run(update_row_sql("deliveries", tuple(fields)), *fields.values(), id)

    # -- leases: which worker runs each active chain -------------------------------------------
    async def claim_chains(self, owner: str, now: float, until: float, limit: int) -> list[str]:
        """Active deliveries whose lease ran out (their worker died or let go), now `owner`'s.
        Rows locked by another claimer are skipped, so two workers never take the same chain."""
        if not self.db.shared:  # one process owns the file: every active chain is its own
            return await self.active_deliveries()
        rows = await self.db.all(  # run out by the database's clock (DB_NOW), for `until - now` more
            f"UPDATE active_chains SET owner=$1, lease_until={DB_NOW} + $2 WHERE delivery IN (SELECT "
            f"delivery FROM active_chains WHERE lease_until < {DB_NOW} ORDER BY lease_until LIMIT $3 "
            "FOR UPDATE SKIP LOCKED) RETURNING delivery",
            owner, until - now, limit,
        )  # fmt: skip
        return [r[0] for r in rows]

    async def renew(self, owner: str, deliveries: list[str], until: float) -> set[str]:
        """Extend `owner`'s leases; the deliveries it still holds. One delivery (a chain's fence
        before its hand-over) rides the group commit; many (the lease keeper's round) are one
        statement of their own."""
        if not self.db.shared:  # one process owns the file: its chains are its own
            return set(deliveries)
        if not deliveries:
            return set()
        w = self.db.writes
        if len(deliveries) == 1 and w is not None:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            w.queue(RenewLease(deliveries[0], owner, until), fut)
            if self.db.in_block():
                await w.join()
            return set(deliveries) if await fut else set()
        rows = await self.db.all(  # for `until - now` more by the database's clock (DB_NOW)
            f"UPDATE active_chains SET lease_until={DB_NOW} + $3 WHERE delivery = ANY($2::text[]) "
            "AND owner=$1 RETURNING delivery",
            owner, deliveries, until - time.time(),
        )  # fmt: skip
        return {r[0] for r in rows}

    async def release(self, owner: str, deliveries: list[str]) -> None:
        if deliveries and self.db.shared:
            await self.db.run(
                "UPDATE active_chains SET lease_until=0 WHERE delivery = ANY($2::text[]) AND owner=$1",
                owner,
                deliveries,
            )
