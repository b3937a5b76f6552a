"""Group commit for the PostgreSQL store, what a flush sends: the hot-path writes of every call
event in flight gathered into a few multi-row statements, run as one.

Why: a call event writes to six tables (the call, its delivery, the attempt, its charge, the
message ids, the receipt) and updates two; one statement per write is ~20 round trips and as
many statement executions per event, which caps a worker at a few hundred events a second and
costs PostgreSQL milliseconds of CPU per event. Here every such write is a record (one kind per
statement, its fields named as the columns they fill; the records and their `unnest` statements
stand in the aggregates' modules, delivery/rows/, beside SQLite's one-row forms); a `Batch`
gathers the records one flush commits and runs them as one statement per kind, each a
data-modifying CTE of one statement, or, when two of them touch the same row, one after the
other in one transaction. Under load a flush carries the writes of dozens of events, so each
event costs a fraction of a statement. When a flush runs, and what happens when it fails, is
pgflush.py.

Each write is idempotent (inserts skip rows that exist, updates set values), so a flush whose
connection dropped is simply run again. Updates of one row queued for the same flush are merged
(the later value of a column wins), so each row is updated once per statement. An update sets a
column to a value: setting a column back to NULL is not something the hot path does.

A `Block` holds the writes of an all-or-nothing block (the store's `tx()`): they join the shared
batch together when the block ends, so one flush commits all of them or none.

Each statement's arrays must match its record's fields: the `*_ARRAYS` getters below name them
in the statements' order, and a test compares the statements a fixed mix of writes makes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import asyncpg

from infra.outage import Unavailable

from .rows.attempts import (
    ATTEMPT_AT,
    ATTEMPT_ROW,
    ATTEMPTS_SQL,
    MESSAGE_IDS_SQL,
    RECEIPTS_SQL,
    InsertAttempt,
    MessageId,
    Receipt,
    UpdateAttempt,
)
from .rows.calls import (
    ACCEPT_SQL,
    CALLS_SQL,
    CHAINS_SQL,
    DELIVERIES_SQL,
    FINISHED_SQL,
    PHASES_ROWS,
    PHASES_SQL,
    RENEW_SQL,
    AcceptCall,
    AskPhases,
    RenewLease,
    UpdateDelivery,
    update_sql,
)
from .rows.events import INBOX_COLUMNS, INBOX_SQL, InboxEvent
from .rows.funnel import FACT_ARRAYS, FACTS_CTES, FACTS_ROWS, FACTS_SQL, FunnelFact
from .rows.ledger import CHARGES_SQL, REFUNDS_DAY_SQL, REFUNDS_SQL, RecordCharge, Refund
from .rows.links import LINK_ROW, LINKS_SQL, InsertLink

Write = (
    AcceptCall | InsertAttempt | RecordCharge | MessageId | Receipt | Refund | RenewLease | AskPhases
    | UpdateDelivery | UpdateAttempt | InsertLink | FunnelFact | InboxEvent
)  # fmt: skip
# Each record's values in the order its statement's arrays take them.
ACCEPT_ARRAYS = attrgetter(
    "call_id", "phase", "event_at", "day",  # CALLS_SQL
    "id", "call_id", "phase", "enterprise", "line", "recipient", "card", "template", "kind", "data", "chain",
    "step", "state", "reason", "channel", "event_at", "created", "updated", "owner", "lease_until",
)  # fmt: skip
ATTEMPT_ARRAYS = attrgetter(*ATTEMPT_ROW)
CHARGE_ARRAYS = attrgetter(
    "key", "enterprise", "package", "line", "channel", "units", "overage", "cost", "day", "at"
)
MESSAGE_ID_ARRAYS = attrgetter("message_id", "attempt", "day")
RECEIPT_ARRAYS = attrgetter("message_id", "stat", "at", "source", "day")
LINK_ARRAYS = attrgetter(*LINK_ROW)
FACT_VALUES = attrgetter(*FACT_ARRAYS)
INBOX_ARRAYS = attrgetter(*INBOX_COLUMNS)

PARAM = re.compile(r"\$(\d+)")


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
    # the day of each updated row, where its writer knew it: its statement names that partition
    days: dict[str, dict[Any, str]] = field(default_factory=lambda: {"deliveries": {}, "attempts": {}})
    refunds: dict[str, tuple[str, str] | tuple[()]] = field(default_factory=dict)  # key → its days
    finished: set[str] = field(default_factory=set)  # deliveries whose state left "active"
    renewals: dict[str, tuple[str, float, list[asyncio.Future[bool]]]] = field(default_factory=dict)
    phases: dict[str, list[asyncio.Future[set[str]]]] = field(default_factory=dict)  # call id → askers
    links: list[InsertLink] = field(default_factory=list)  # short links minted with their attempts
    # the funnel's facts (rows/funnel.py) by key, with who waits to hear whether each was new
    facts: dict[str, tuple[FunnelFact, list[asyncio.Future[bool]]]] = field(default_factory=dict)
    inbox: list[InboxEvent] = field(default_factory=list)  # the event stream's facts (rows/events.py)
    size: int = 0
    clock: Callable[[], float] = time.time  # this worker's: a lease's length is its end less now

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
        self.refunds.pop(w.key, None)  # charged again after a refund in this flush

    def _message_id(self, w: MessageId, fut: None) -> None:
        self.message_ids.append(w)

    def _receipt(self, w: Receipt, fut: None) -> None:
        self.receipts.append(w)

    def _link(self, w: InsertLink, fut: None) -> None:
        self.links.append(w)

    def _fact(self, w: FunnelFact, fut: asyncio.Future[bool] | None) -> None:
        held = self.facts.get(w.key)
        if held is not None:  # a repeat in the same flush is not new
            if fut is not None:
                fut.set_result(False)
            return
        self.facts[w.key] = (w, [fut] if fut is not None else [])

    def _inbox(self, w: InboxEvent, fut: None) -> None:
        self.inbox.append(w)

    def _refund(self, w: Refund, fut: None) -> None:
        if w.days or w.key not in self.refunds:
            self.refunds[w.key] = w.days

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
        if w.day:
            self.days[w.table][w.id] = w.day

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
        if self.links:
            rows = sorted(self.links, key=lambda w: w.code)
            parts.append(("lnk", LINKS_SQL, list(zip(*map(LINK_ARRAYS, rows), strict=True))))
        if self.facts:
            rows = [FACT_VALUES(self.facts[k][0]) for k in sorted(self.facts)]
            parts.append(("fct", FACTS_SQL, list(zip(*rows, strict=True))))
        if self.inbox:  # new rows only (their own ids): nothing else in the flush touches them
            parts.append(("evt", INBOX_SQL, list(zip(*map(INBOX_ARRAYS, self.inbox), strict=True))))
        for table, rows in self.updates.items():
            # one statement per shape and day (a day is a constant of its statement: one
            # partition touched); rows whose day nobody knew probe every partition
            groups: dict[tuple[tuple[str, ...], str], list[tuple[Any, ...]]] = {}
            days = self.days[table]
            for id_, fields in rows.items():
                cols = tuple(sorted(fields))
                groups.setdefault((cols, days.get(id_, "")), []).append((id_, *(fields[c] for c in cols)))
            for i, ((cols, day), vals) in enumerate(sorted(groups.items())):
                args: list[Any] = [*zip(*vals, strict=True), *([day] if day else [])]
                parts.append((f"u{table[0]}{i}", update_sql(table, cols, bool(day)), args))
        if self.refunds:  # a statement per pair of days (one partition or two), unknown days: all
            by_days: dict[tuple[str, ...], list[str]] = {}
            for key, days in self.refunds.items():
                by_days.setdefault(days, []).append(key)
            for i, (days, keys) in enumerate(sorted(by_days.items())):
                name = "ref" if i == 0 else f"ref{i}"
                parts.append((name, REFUNDS_DAY_SQL if days else REFUNDS_SQL, [sorted(keys), *days]))
        if self.renewals:
            ids = list(self.renewals)
            owners, now = [self.renewals[i][0] for i in ids], self.clock()
            lengths = [self.renewals[i][1] - now for i in ids]  # the database adds them to its now
            parts.append(("ren", RENEW_SQL, [ids, owners, lengths]))
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
            or self.refunds.keys() & self.charges.keys()
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
            elif name == "fct":  # the facts, their daily counters; the new ones named in its rows
                ctes.append(shifted(FACTS_CTES))
            else:
                ctes.append(f"{name} AS ({shifted(sql)})")
            args += values
        rows = [
            *(["SELECT 'a' AS k, id, NULL AS phase FROM acc"] if self.accept else []),
            *(["SELECT 'r' AS k, id, NULL AS phase FROM ren"] if self.renewals else []),
            *([phases] if self.phases else []),
            *([FACTS_ROWS] if self.facts else []),
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
        facts: set[str] = set()  # the keys of the facts that were new
        phases: dict[str, set[str]] = {}
        parts = self._parts()
        if parts and self._one_statement_safe():
            sql, args = self.statement(parts)
            for k, id_, phase in await conn.fetch(sql, *args):
                if k == "p":
                    phases.setdefault(id_, set()).add(phase)
                elif k == "f":
                    facts.add(id_)
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
                elif name == "fct":
                    facts.update(r[1] for r in await conn.fetch(sql, *values))
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
            for key, (_, futs) in self.facts.items():
                for f in futs:
                    if not f.done():
                        f.set_result(key in facts)

        return tell

    async def run(self, conn: asyncpg.Connection) -> Callable[[], None]:
        """`apply` in a transaction when it takes several statements. Cancelled (the flush timed
        out), the transaction is left to the connection's end rather than rolled back on a server
        that does not answer."""
        if self.statements() <= 1:
            return await self.apply(conn)
        tr = conn.transaction()
        await tr.start()
        try:
            tell = await self.apply(conn)
        except asyncio.CancelledError:
            raise
        except BaseException:
            await tr.rollback()
            raise
        await tr.commit()
        return tell

    def held(self) -> bool:
        """After `drop_answers`: whether any write is left to commit."""
        return bool(
            self.attempts or self.charges or self.message_ids or self.receipts or self.refunds
            or self.links or self.facts or self.inbox or self.finished or any(self.updates.values())
        )  # fmt: skip

    def drop_answers(self, backend: str, cause: BaseException) -> None:
        """The database is away: those who wait for an answer hear `Unavailable` and their writes
        (a call event's acceptance, a lease renewal, a phase question) are dropped; the rest is
        kept for the next flush. A funnel fact is kept too (it commits once, later), but whoever
        waits for it hears `Unavailable` now."""
        for futs in [*(f for _, f in self.accept.values()), *(f for *_, f in self.renewals.values()),
                     *self.phases.values(), *(f for _, f in self.facts.values())]:  # fmt: skip
            for f in futs:
                if not f.done():
                    f.set_exception(Unavailable(backend, cause))
        self.facts = {k: (w, []) for k, (w, _) in self.facts.items()}
        self.accept.clear()
        self.renewals.clear()
        self.phases.clear()

    def fail(self, exc: BaseException) -> None:
        waiting = [
            *(f for _, futs in self.accept.values() for f in futs),
            *(f for _, _, futs in self.renewals.values() for f in futs),
            *(f for _, futs in self.facts.values() for f in futs),
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
    InsertLink: Batch._link,
    FunnelFact: Batch._fact,
    InboxEvent: Batch._inbox,
    RenewLease: Batch._renew,
    AskPhases: Batch._phases,
    UpdateDelivery: Batch._update,
    UpdateAttempt: Batch._update,
}


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
