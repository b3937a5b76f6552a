"""Group commit for the PostgreSQL store: the hot-path writes of every call event in flight share
a few multi-row statements and one transaction.

Why: a call event writes to six tables (the call, its delivery, the attempt, its charge, the
message ids, the receipt) and updates two; one statement per write is ~20 round trips and as
many statement executions per event, which caps a worker at a few hundred events a second and
costs PostgreSQL milliseconds of CPU per event. Here every such write is queued; a flush takes
all that is queued and runs it as one statement per kind (`unnest` over arrays), in one
transaction. Under load a flush carries the writes of dozens of events, so each event costs a
fraction of a statement.

When a flush runs:
- at once (after the event loop has served every task already ready, so concurrent requests
  join) when someone waits: `settled()` (the store's `durable()`, a read of the hot tables, a
  result such as "was this call event new?");
- otherwise within `TICK` seconds.
One flush runs at a time, so writes to one row commit in the order they were made; what is
queued while a flush runs goes in the next.

Each write is idempotent (inserts skip rows that exist, updates set values), so a flush whose
connection dropped is simply run again. Updates of one row queued for the same flush are merged
(the later value of a column wins), so each row is updated once per statement. An update sets a
column to a value: setting a column back to NULL is not something the hot path does.

A flush with no answer within `FLUSH_TIMEOUT` has an unknown outcome: the server may commit it
once it answers again. It is handled as a dropped connection is (every write above is
idempotent, so running it again changes nothing twice), with one more step: its connection is
dropped, and before anything runs again on a fresh one the old session is ended on the server
(`pg_terminate_backend`) and waited for until it is gone, so the old flush cannot commit after
the writes that follow it (which would set rows back to older values).

An outage of the database loses nothing written: a flush that still fails after its retries
answers its waiters `Unavailable` (their requests are answered 503: a call event's acceptance,
a renewal and a phase question are dropped with it, so a refused call event was not half
accepted) and keeps its other writes (attempts, message ids, receipts, updates, charges) in
memory, in order, ahead of anything queued later; they are retried every `HELD_RETRY` seconds
and commit as soon as the database answers, before any read of the store. They are what the
chains and receipts in flight wrote, so they are bounded by those: new call events are refused
meanwhile. A receipt held this way is also unacknowledged to the SMSC, which sends it again.

A `Block` holds the writes of an all-or-nothing block (the store's `tx()`): they join the shared
batch together when the block ends, so one flush commits all of them or none.

Why one module of this length: the queue, the flush and the one statement per kind of write are one
mechanism; each statement's array shape must match its queue entry, and they are checked together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, ClassVar

import asyncpg

from infra.outage import Unavailable, backend_of, outages

log = logging.getLogger("mingpian.delivery")
TICK = 0.02  # s: writes nobody waits for are committed within this
# Under steady load that comes in a trickle (the last flush ended less than BUSY ago and carried
# fewer than SMALL writes) a flush someone waits for starts LINGER later, so the writes of the
# requests arriving meanwhile share it: events arriving one by one would otherwise each pay a
# flush (statement, round trip, commit) of their own. Load that comes in bursts fills flushes
# without help, and an idle store flushes at once: neither waits.
LINGER = 0.003  # s
BUSY = 0.01  # s
SMALL = 16  # writes
RETRIES = 3  # a flush whose connection failed is run again this many times
HELD_RETRY = 0.5  # s between flushes of the writes an outage holds, when nobody waits for them
ACQUIRE_TIMEOUT = 5.0  # s a flush waits for a connection
# s a flush may take: a server that does not answer (stopped, a partition without resets) is an
# outage after this, not a wait as long as it lasts. A flush normally takes milliseconds.
FLUSH_TIMEOUT = 5.0

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
# The columns of an attempt row as queued for ATTEMPTS_SQL: an update of an attempt whose insert
# is in the same flush is folded into the inserted row (its units, its state after the submit).
ATTEMPT_ROW = ("id", "delivery", "step", "channel", "state", "segments", "units", "started", "deadline",
               "done", "detail")  # fmt: skip
ATTEMPT_AT = {c: i for i, c in enumerate(ATTEMPT_ROW)}


# The writes, one record per kind, each field named as the column it fills.
@dataclass(frozen=True, slots=True)
class AcceptCall:
    """A call event (its `calls` row) with its delivery and, when active, its chain's lease: the
    delivery and the lease are written only if the call event is new."""

    call_id: str
    phase: str
    event_at: float
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
class RecordCharge:
    """A charge row (written again, it replaces the row and clears a refund)."""

    key: str
    enterprise: str
    package: str | None
    line: str
    channel: str
    units: int
    overage: int
    cost: float
    day: str
    at: float


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
class Refund:
    """A charge refunded."""

    key: str


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


@dataclass(frozen=True, slots=True)
class UpdateAttempt:
    """Columns of an attempt set to values (names from UPDATE_TYPES only)."""

    table: ClassVar[str] = "attempts"
    id: int
    values: dict[str, Any]


Write = (
    AcceptCall | InsertAttempt | RecordCharge | MessageId | Receipt | Refund | RenewLease | AskPhases
    | UpdateDelivery | UpdateAttempt
)  # fmt: skip
# Each record's values in the order its statement's arrays take them.
ACCEPT_ARRAYS = attrgetter(
    "call_id", "phase", "event_at",  # CALLS_SQL
    "id", "call_id", "phase", "enterprise", "line", "recipient", "card", "template", "kind", "data", "chain",
    "step", "state", "reason", "channel", "event_at", "created", "updated", "owner", "lease_until",
)  # fmt: skip
ATTEMPT_ARRAYS = attrgetter(*ATTEMPT_ROW)
CHARGE_ARRAYS = attrgetter(
    "key", "enterprise", "package", "line", "channel", "units", "overage", "cost", "day", "at"
)
MESSAGE_ID_ARRAYS = attrgetter("message_id", "attempt")
RECEIPT_ARRAYS = attrgetter("message_id", "stat", "at", "source")

CALLS_SQL = (
    "INSERT INTO calls (call_id, phase, at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) ON CONFLICT DO NOTHING "
    "RETURNING call_id, phase"
)
DELIVERIES_SQL = (  # only the deliveries whose call event was new (the CTE `c`: CALLS_SQL)
    "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
    "chain, step, state, reason, channel, event_at, created, updated, owner, lease_until) "
    "SELECT d.id, d.call_id, d.phase, d.enterprise, d.line, d.recipient, d.card, d.template, d.kind, d.data, "
    "d.chain, d.step, d.state, d.reason, d.channel, d.event_at, d.created, d.updated, d.owner, d.lease_until "
    "FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
    "$11::text[], $12::text[], $13::text[], $14::text[], $15::int[], $16::text[], $17::text[], $18::text[], "
    "$19::float8[], $20::float8[], $21::float8[], $22::text[], $23::float8[]) AS d(id, call_id, phase, "
    "enterprise, line, recipient, card, template, kind, data, chain, step, state, reason, channel, event_at, "
    "created, updated, owner, lease_until) JOIN c ON c.call_id = d.call_id AND c.phase = d.phase "
    "ON CONFLICT DO NOTHING RETURNING id, state, owner, lease_until"
)
CHAINS_SQL = (  # the new deliveries that are active (the CTE `acc`: DELIVERIES_SQL) and their leases
    "INSERT INTO active_chains (delivery, owner, lease_until) "
    "SELECT id, owner, lease_until FROM acc WHERE state = 'active' ON CONFLICT DO NOTHING"
)
ACCEPT_SQL = f"WITH c AS ({CALLS_SQL}), acc AS ({DELIVERIES_SQL}), ach AS ({CHAINS_SQL}) SELECT id FROM acc"
ATTEMPTS_SQL = (
    "INSERT INTO attempts (id, delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail) SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], "
    "$7::int[], $8::float8[], $9::float8[], $10::float8[], $11::text[]) ON CONFLICT DO NOTHING"
)
CHARGES_SQL = (
    "INSERT INTO charges (key, enterprise, package, line, channel, units, overage, cost, day, at, refunded) "
    "SELECT *, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], "
    "$7::int[], $8::float8[], $9::text[], $10::float8[]) ON CONFLICT (key) DO UPDATE SET "
    "enterprise = excluded.enterprise, package = excluded.package, line = excluded.line, "
    "channel = excluded.channel, units = excluded.units, overage = excluded.overage, "
    "cost = excluded.cost, day = excluded.day, at = excluded.at, refunded = 0"
)
MESSAGE_IDS_SQL = (
    "INSERT INTO message_ids (message_id, attempt, stat) SELECT m, a, NULL "
    "FROM unnest($1::text[], $2::bigint[]) AS u(m, a) ON CONFLICT DO NOTHING"
)
RECEIPTS_SQL = (
    "INSERT INTO receipts (message_id, stat, at, source) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) ON CONFLICT DO NOTHING"
)
REFUNDS_SQL = "UPDATE charges SET refunded = 1 WHERE key = ANY($1::text[])"
RENEW_SQL = (
    "UPDATE active_chains a SET lease_until = u.until FROM unnest($1::text[], $2::text[], $3::float8[]) "
    "AS u(id, owner, until) WHERE a.delivery = u.id AND a.owner = u.owner RETURNING a.delivery AS id"
)
FINISHED_SQL = "DELETE FROM active_chains WHERE delivery = ANY($1::text[])"  # deliveries no longer active
# The phases stored for calls (pre-call chains ask before their hand-over): a read that rides the
# flush, answered from the same snapshot as a statement of its own would have been.
PHASES_SQL = "SELECT call_id, phase FROM calls WHERE call_id = ANY($1::text[])"
PHASES_ROWS = "SELECT 'p' AS k, call_id AS id, phase FROM calls WHERE call_id = ANY($1::text[])"
PARAM = re.compile(r"\$(\d+)")


def update_sql(table: str, columns: tuple[str, ...]) -> str:
    """One UPDATE for many rows that change the same columns (names from UPDATE_TYPES only)."""
    types = UPDATE_TYPES[table]
    kinds = [ID_TYPES[table], *(types[c] for c in columns)]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(kinds, 1))
    sets = ", ".join(f"{c} = u.{c}" for c in columns)
    names = ", ".join(columns)
    return f"UPDATE {table} t SET {sets} FROM unnest({arrays}) AS u(id, {names}) WHERE t.id = u.id"


@dataclass
class Batch:
    """The writes one flush commits, gathered by kind."""

    accept: dict[str, tuple[AcceptCall, list[asyncio.Future[bool]]]] = field(default_factory=dict)
    # id → the row's values (ATTEMPT_ROW): the attempt's updates in the same flush are folded in
    attempts: dict[int, list[Any]] = field(default_factory=dict)
    charges: dict[str, RecordCharge] = field(default_factory=dict)
    message_ids: list[MessageId] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    updates: dict[str, dict[Any, dict[str, Any]]] = field(
        default_factory=lambda: {"deliveries": {}, "attempts": {}}
    )
    refunds: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)  # deliveries whose state left "active"
    renewals: dict[str, tuple[str, float, list[asyncio.Future[bool]]]] = field(default_factory=dict)
    phases: dict[str, list[asyncio.Future[set[str]]]] = field(default_factory=dict)  # call id → askers
    size: int = 0

    def add(self, write: Write, fut: asyncio.Future[Any] | None = None) -> None:
        """Gather `write` with those of its kind; `fut` hears its answer (AcceptCall: new?,
        RenewLease: still held?, AskPhases: the phases) once the flush committed."""
        self.size += 1
        GATHER[type(write)](self, write, fut)

    def _accept(self, w: AcceptCall, fut: asyncio.Future[bool] | None) -> None:
        if w.id in self.accept:  # a repeat in the same flush is not new
            if fut is not None:
                fut.set_result(False)
            return
        self.accept[w.id] = (w, [fut] if fut is not None else [])

    def _attempt(self, w: InsertAttempt, fut: None) -> None:
        self.attempts[w.id] = list(ATTEMPT_ARRAYS(w))

    def _charge(self, w: RecordCharge, fut: None) -> None:
        self.charges[w.key] = w
        self.refunds.discard(w.key)  # charged again after a refund in this flush

    def _message_id(self, w: MessageId, fut: None) -> None:
        self.message_ids.append(w)

    def _receipt(self, w: Receipt, fut: None) -> None:
        self.receipts.append(w)

    def _refund(self, w: Refund, fut: None) -> None:
        self.refunds.add(w.key)

    def _phases(self, w: AskPhases, fut: asyncio.Future[set[str]] | None) -> None:
        self.phases.setdefault(w.call_id, []).extend([fut] if fut is not None else [])

    def _renew(self, w: RenewLease, fut: asyncio.Future[bool] | None) -> None:
        held = self.renewals.get(w.delivery)
        futs = held[2] if held else []
        if fut is not None:
            futs.append(fut)
        until = max(w.lease_until, held[1]) if held else w.lease_until
        self.renewals[w.delivery] = (w.owner, until, futs)

    def _update(self, w: UpdateDelivery | UpdateAttempt, fut: None) -> None:
        if w.table == "deliveries" and w.values.get("state", "active") != "active":
            self.finished.add(w.id)
        pending = self.attempts.get(w.id) if w.table == "attempts" else None
        if pending is not None and w.values.keys() <= ATTEMPT_AT.keys():
            for column, value in w.values.items():
                pending[ATTEMPT_AT[column]] = value
            return
        self.updates[w.table].setdefault(w.id, {}).update(w.values)

    def _parts(self) -> list[tuple[str, str, list[Any]]]:
        """Each write as (name, statement, arguments), in the order a transaction runs them."""
        parts: list[tuple[str, str, list[Any]]] = []
        if self.accept:  # each kind's rows in key order: concurrent flushes lock keys alike
            rows = sorted((w for w, _ in self.accept.values()), key=lambda w: (w.call_id, w.phase))
            parts.append(("acc", ACCEPT_SQL, list(zip(*map(ACCEPT_ARRAYS, rows), strict=True))))
        if self.attempts:
            parts.append(("att", ATTEMPTS_SQL, list(zip(*self.attempts.values(), strict=True))))
        if self.charges:
            rows = map(CHARGE_ARRAYS, self.charges.values())
            parts.append(("chg", CHARGES_SQL, list(zip(*rows, strict=True))))
        if self.message_ids:
            rows = sorted(map(MESSAGE_ID_ARRAYS, self.message_ids))
            parts.append(("mid", MESSAGE_IDS_SQL, list(zip(*rows, strict=True))))
        if self.receipts:
            rows = sorted(self.receipts, key=lambda w: w.message_id)
            parts.append(("rct", RECEIPTS_SQL, list(zip(*map(RECEIPT_ARRAYS, rows), strict=True))))
        for table, rows in self.updates.items():
            groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            for id_, fields in rows.items():
                cols = tuple(sorted(fields))
                groups.setdefault(cols, []).append((id_, *(fields[c] for c in cols)))
            for i, (cols, vals) in enumerate(groups.items()):
                parts.append((f"u{table[0]}{i}", update_sql(table, cols), list(zip(*vals, strict=True))))
        if self.refunds:
            parts.append(("ref", REFUNDS_SQL, [list(self.refunds)]))
        if self.renewals:
            ids = list(self.renewals)
            owners, untils = [self.renewals[i][0] for i in ids], [self.renewals[i][1] for i in ids]
            parts.append(("ren", RENEW_SQL, [ids, owners, untils]))
        if self.finished:  # after the renewals: a chain renewed as it finishes was held
            parts.append(("fin", FINISHED_SQL, [list(self.finished)]))
        if self.phases:
            parts.append(("phs", PHASES_SQL, [list(self.phases)]))
        return parts

    def _one_statement_safe(self) -> bool:
        """Whether every write can share one statement. Its parts all see the database as it
        was before it, so none may touch a row another part of it writes: a row inserted and
        updated in the same flush (attempt updates are folded into their insert instead; the
        rest is rare), a lease renewed as its chain finishes, a charge refunded as it is written."""
        deliveries = self.updates["deliveries"].keys()
        return not (
            (deliveries | self.renewals.keys()) & self.accept.keys()
            or self.finished & self.renewals.keys()
            or self.updates["attempts"].keys() & self.attempts.keys()
            or self.refunds & self.charges.keys()
        )

    def statement(self, parts: list[tuple[str, str, list[Any]]] | None = None) -> tuple[str, list[Any]]:
        """All the writes (`parts`, from `_parts`) as one statement (`_one_statement_safe` said
        it may): each a data-modifying CTE (PostgreSQL runs every one of them to completion,
        once), the new delivery ids, the renewed leases and the phases asked for as its rows.
        One statement is one round trip and needs no transaction block of its own: it commits
        all or nothing."""
        ctes: list[str] = []
        args: list[Any] = []
        phases = ""
        for name, sql, values in self._parts() if parts is None else parts:
            k = len(args)

            def shifted(text: str, k: int = k) -> str:
                return PARAM.sub(lambda m: f"${int(m[1]) + k}", text)

            if name == "acc":  # the calls, the deliveries of the new ones, their chains (ACCEPT_SQL)
                calls, deliveries = shifted(CALLS_SQL), shifted(DELIVERIES_SQL)
                ctes.append(f"c AS ({calls}), acc AS ({deliveries}), ach AS ({CHAINS_SQL})")
            elif name == "phs":  # a read: one of the statement's rows, not a CTE
                phases = shifted(PHASES_ROWS)
            else:
                ctes.append(f"{name} AS ({shifted(sql)})")
            args += values
        rows = [
            *(["SELECT 'a' AS k, id, NULL AS phase FROM acc"] if self.accept else []),
            *(["SELECT 'r' AS k, id, NULL AS phase FROM ren"] if self.renewals else []),
            *([phases] if self.phases else []),
        ]
        select = " UNION ALL ".join(rows) or "SELECT NULL AS k, NULL AS id, NULL AS phase WHERE false"
        return f"WITH {', '.join(ctes)} {select}" if ctes else select, args

    def statements(self) -> int:
        """How many statements `apply` runs: 1 when they can share one."""
        return 1 if self._one_statement_safe() else len(self._parts())

    async def apply(self, conn: asyncpg.Connection) -> Callable[[], None]:
        """Run the writes on `conn` (in its transaction when they take several statements);
        returns what tells the waiting callers their results, to call once it committed."""
        new: set[str] = set()
        held: set[str] = set()
        phases: dict[str, set[str]] = {}
        parts = self._parts()
        if parts and self._one_statement_safe():
            sql, args = self.statement(parts)
            for k, id_, phase in await conn.fetch(sql, *args):
                if k == "p":
                    phases.setdefault(id_, set()).add(phase)
                else:
                    (new if k == "a" else held).add(id_)
        else:
            for name, sql, values in parts:
                if name in ("acc", "ren"):
                    got = {r[0] for r in await conn.fetch(sql, *values)}
                    (new if name == "acc" else held).update(got)
                elif name == "phs":
                    for call_id, phase in await conn.fetch(sql, *values):
                        phases.setdefault(call_id, set()).add(phase)
                else:
                    await conn.execute(sql, *values)

        def tell() -> None:
            for did, (_, futs) in self.accept.items():
                for f in futs:
                    if not f.done():
                        f.set_result(did in new)
            for did, (_, _, futs) in self.renewals.items():
                for f in futs:
                    if not f.done():
                        f.set_result(did in held)
            for call_id, askers in self.phases.items():
                for f in askers:
                    if not f.done():
                        f.set_result(set(phases.get(call_id, ())))

        return tell

    def held(self) -> bool:
        """After `drop_answers`: whether any write is left to commit."""
        return bool(
            self.attempts or self.charges or self.message_ids or self.receipts or self.refunds
            or self.finished or any(self.updates.values())
        )  # fmt: skip

    def drop_answers(self, backend: str, cause: BaseException) -> None:
        """The database is away: those who wait for an answer hear `Unavailable` and their writes
        (a call event's acceptance, a lease renewal, a phase question) are dropped; the rest is
        kept for the next flush."""
        for futs in [*(f for _, f in self.accept.values()), *(f for *_, f in self.renewals.values()),
                     *self.phases.values()]:  # fmt: skip
            for f in futs:
                if not f.done():
                    f.set_exception(Unavailable(backend, cause))
        self.accept.clear()
        self.renewals.clear()
        self.phases.clear()

    def fail(self, exc: BaseException) -> None:
        waiting = [
            *(f for _, futs in self.accept.values() for f in futs),
            *(f for _, _, futs in self.renewals.values() for f in futs),
            *(f for askers in self.phases.values() for f in askers),
        ]
        for f in waiting:
            if not f.done():
                f.set_exception(exc)


# Which of Batch's methods gathers each kind of write.
GATHER: dict[type, Callable[[Batch, Any, Any], None]] = {
    AcceptCall: Batch._accept,
    InsertAttempt: Batch._attempt,
    RecordCharge: Batch._charge,
    MessageId: Batch._message_id,
    Receipt: Batch._receipt,
    Refund: Batch._refund,
    RenewLease: Batch._renew,
    AskPhases: Batch._phases,
    UpdateDelivery: Batch._update,
    UpdateAttempt: Batch._update,
}


async def _apply(batch: Batch, conn: asyncpg.Connection) -> Callable[[], None]:
    """`batch.apply` in a transaction when it takes several statements. Cancelled (the flush
    timed out), the transaction is left to the connection's end rather than rolled back on a
    server that does not answer."""
    if batch.statements() <= 1:
        return await batch.apply(conn)
    tr = conn.transaction()
    await tr.start()
    try:
        tell = await batch.apply(conn)
    except asyncio.CancelledError:
        raise
    except BaseException:
        await tr.rollback()
        raise
    await tr.commit()
    return tell


@dataclass
class Block:
    """The writes of one all-or-nothing block, and the connection it holds once it had to run a
    statement of its own (then its writes go on that connection, in its transaction)."""

    writes: list[tuple[Write, asyncio.Future[Any] | None]] = field(default_factory=list)
    conn: asyncpg.Connection | None = None
    tr: Any = None  # the connection's transaction (asyncpg's Transaction)

    def batch(self) -> Batch:
        b = Batch()
        for write, fut in self.writes:
            b.add(write, fut)
        self.writes = []
        return b


# Connection trouble: the flush runs again on a fresh connection. (A connection the server
# dropped while idle can also surface as asyncpg's InternalClientError on its next use.)
RETRYABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    # Two workers' flushes inserting the same keys (a call event posted to both, a receipt the
    # SMSC sent twice) take the keys' locks in the same order, as rows are sorted by key; should
    # PostgreSQL still find a deadlock, it aborts one flush, which runs again.
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    ConnectionError,
    OSError,
)


class GroupCommit:
    """The queue of hot-path writes and the one flush that runs at a time."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool
        # The flushes' own connection, kept between them: every statement shape is prepared once
        # on it (a flush's statement depends on which kinds of write it carries), and a flush
        # pays no pool checkout. Given back when it fails, and at close.
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._open = Batch()
        self._queued = 0  # writes queued so far
        self._committed = 0  # writes committed so far (in queue order)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False
        self._ended = float("-inf")  # loop time the last flush ended
        self._last = 0  # writes the last flush carried
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._task: asyncio.Task[None] | None = None
        self._held: list[Batch] = []  # writes an outage kept from committing, oldest first
        self._retry: asyncio.TimerHandle | None = None
        self._unanswered: int | None = None  # server pid of a session whose flush timed out
        self.flushes = 0

    def add(self, write: Write, fut: asyncio.Future[Any] | None = None) -> None:
        self._open.add(write, fut)
        self._queued += 1
        self._kick(soon=fut is not None)  # someone waits for a result: flush now

    def add_block(self, block: Block) -> None:
        """A block's writes join the open batch together (no await in between)."""
        waited = False
        for write, fut in block.writes:
            self._open.add(write, fut)
            waited = waited or fut is not None
        self._queued += len(block.writes)
        block.writes = []
        self._kick(soon=waited)

    async def settled(self) -> None:
        """Return once every write queued so far is committed (raises what the flush raised)."""
        target = self._queued
        if self._committed >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._kick(soon=True)
        await fut

    def _kick(self, soon: bool) -> None:
        if self._running:
            self._soon = self._soon or soon
            return
        loop = asyncio.get_running_loop()
        if soon:
            if not self._soon:
                self._soon = True
                if self._timer is not None:
                    self._timer.cancel()
                if self._last < SMALL and loop.time() - self._ended < BUSY:
                    self._timer = loop.call_later(LINGER, self._start)
                else:
                    self._timer = loop.call_soon(self._start)  # type: ignore[assignment]
        elif self._timer is None:
            self._timer = loop.call_later(TICK, self._start)

    def _start(self) -> None:
        self._timer = None
        self._soon = False
        if self._running or (self._open.size == 0 and not self._held):
            return
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="delivery-group-commit")

    async def _run(self) -> None:
        try:
            while self._open.size or self._held:
                if not await self._flush():
                    break  # the database is away: the held writes are tried again later
                if not self._soon and not self._waiters:
                    break  # what was queued meanwhile nobody waits for: the next tick takes it
                self._soon = False
                if self._open.size < SMALL:  # a trickle queued meanwhile: let more join it first
                    await asyncio.sleep(LINGER)
        finally:
            self._running = False
            self._task = None
            loop = asyncio.get_running_loop()
            self._ended = loop.time()
            if self._held:
                if self._retry is None:
                    self._retry = loop.call_later(HELD_RETRY, self._start_held)
            elif self._open.size:
                self._kick(soon=bool(self._waiters))

    def _start_held(self) -> None:
        self._retry = None
        self._start()

    async def _flush(self) -> bool:
        """Commit the held writes, then what is queued; False when the database is away."""
        batch, self._open = self._open, Batch()
        upto = self._queued
        self._last = batch.size
        pending = [*self._held, batch]
        self._held = []
        error: BaseException | None = None
        while pending:
            failed = await self._commit(pending[0])
            error = error or failed
            if failed is not None and backend_of(failed) is not None:
                error = failed
                outages.down("database", failed)  # one line for the whole outage
                for b in pending:
                    b.drop_answers("database", failed)
                self._held = [b for b in pending if b.held()]
                break
            if failed is None:
                outages.up("database")
            pending.pop(0)
        if not self._held:
            self._committed = upto
        keep = []
        for target, fut in self._waiters:
            if target <= upto:
                if not fut.done():
                    if error is None:
                        fut.set_result(None)
                    elif backend_of(error) is not None:
                        fut.set_exception(Unavailable("database", error))
                    else:
                        fut.set_exception(error)
            else:
                keep.append((target, fut))
        self._waiters = keep
        return not self._held

    async def _commit(self, batch: Batch) -> BaseException | None:
        """Run one batch (again on a fresh connection after a connection error); the error it
        still failed with, or None once committed and its callers told."""
        error: BaseException | None = None
        for attempt in range(RETRIES + 1):
            conn = None
            try:
                if self._conn is None:
                    self._conn = await self._pool().acquire(timeout=ACQUIRE_TIMEOUT)
                conn = self._conn
                async with asyncio.timeout(FLUSH_TIMEOUT):
                    if self._unanswered is not None:
                        await self._end_session(conn, self._unanswered)
                    tell = await _apply(batch, conn)
                self.flushes += 1
                tell()
                error = None
                break
            except TimeoutError as exc:  # no answer: an outage now, not after RETRIES more waits
                error = Unavailable("database", exc)
                if conn is not None:  # a statement went out: its outcome is unknown
                    self._unanswered = self._unanswered or conn.get_server_pid()
                    self._conn = None
                    conn.terminate()  # its session is ended on the server before anything runs again
                break
            except RETRYABLE as exc:
                error = exc
                if backend_of(exc) is None:  # a deadlock, not an outage (that is logged once)
                    log.warning("delivery group commit: %s; trying again", exc)
                await self._give_back()
                await asyncio.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # a bug in what was queued: the callers hear it
                log.exception("delivery group commit failed")
                error = exc
                break
        if error is not None and backend_of(error) is None:
            batch.fail(error)
        return error

    async def _end_session(self, conn: asyncpg.Connection, pid: int) -> None:
        """End the server session of a flush that got no answer, and wait until it is gone: its
        transaction is then committed or rolled back for good, before anything else is run.
        (Without the right to end it, the session ends by itself once it finds its client gone.)"""
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        while await conn.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.05)
        self._unanswered = None

    async def _give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._pool().release(conn)
            except Exception:  # a broken connection: the pool replaces it
                log.debug("delivery group commit: releasing a failed connection", exc_info=True)

    async def close(self) -> None:
        """Commit what is queued (a clean stop loses nothing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._open.size or self._held:
            self._running = True
            try:
                await self._flush()
            finally:
                self._running = False
        await self._give_back()
