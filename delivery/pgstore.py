"""The delivery domain in PostgreSQL: the system of record shared by every worker of a fleet.

Same interface as the SQLite store (storage.py), same tables. What differs:
- Transactions: `tx()` binds a pooled connection to the task (a context variable) and every
  store call inside it runs on that connection, in that transaction; a nested `tx()` is a
  savepoint. Outside `tx()` each call is one autocommitted statement. A statement returns only
  once committed, so `durable()` has nothing left to wait for.
- Read caches: configuration documents, API keys and opt-outs are read on every call event, so
  each process keeps them in memory like the SQLite store does. A change is announced with
  NOTIFY in the writing transaction (delivered at its commit) and every process, this one
  included, drops or extends its caches when it hears it. Between a commit and the
  notification's arrival (about a millisecond on one network) another process may still read
  the old document.
- High-volume tables (deliveries, attempts, message_ids, receipts, charges) are indexed for the
  queries the chain and the reports make; docs/delivery.md says how to partition them by time
  once they reach billions of rows.

The schema is `migrations/postgresql/`, applied at start (infra/migrations_pg.py) under an
advisory lock, so workers starting at once do not race.

One module past ~500 lines on purpose: it is one class implementing every method of the store
protocol, like its SQLite twin (store.py); split by table, each part would need the shared
transaction and cache handling.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from infra import jsonio
from infra.migrations import Migrations
from infra.migrations_pg import migrate_postgres
from infra.outage import outages, quiet_pool_warnings

from .console_pg import PgConsoleRows
from .metering.ledger import GROUPS, LedgerEntry, usage_dicts
from .metering.packages import Charge
from .pgbatch import (
    AcceptCall,
    AskPhases,
    Block,
    InsertAttempt,
    MessageId,
    Receipt,
    RecordCharge,
    Refund,
    RenewLease,
    UpdateAttempt,
    UpdateDelivery,
    Write,
)
from .pgflush import GroupCommit
from .records import MEDIA_COLUMNS, MEDIA_FIELDS, OUTCOME, Attempt, Delivery, attempt_stats

log = logging.getLogger("mingpian.delivery")
# Active deliveries, and those whose current attempt waits for a receipt: its cost grows with the
# active chains (a table of their own), not with the history.
QUEUE = (
    "SELECT count(*), count(a.id) FROM active_chains c JOIN deliveries d ON d.id = c.delivery "
    "LEFT JOIN attempts a ON a.delivery = d.id AND a.step = d.step AND a.state IN ('submitted', 'unknown')"
)
MEDIA_PARAMS = ", ".join(f"${i}" for i in range(1, len(MEDIA_FIELDS) + 2))  # enterprise + the row
CHANNEL = "mingpian_delivery"  # NOTIFY channel of cache invalidations
MIGRATIONS = Migrations.load("delivery", "postgresql", database="delivery")
DELIVERY_COLUMNS = (
    "id, call_id, phase, enterprise, line, recipient, card, template, kind, data, chain, step, state, "
    "reason, channel, event_at, created, updated"
)
ATTEMPT_COLUMNS = (
    "id, delivery, step, channel, state, segments, units, started, deadline, done, detail, revoke"
)
ATTEMPT_WIDTH = len(ATTEMPT_COLUMNS.split(", "))
UPDATABLE = {
    "deliveries": frozenset({"step", "state", "reason", "channel", "updated"}),
    "attempts": frozenset({"state", "units", "done", "detail", "deadline", "revoke"}),
}
ID_BLOCK = 256  # attempt ids taken from the sequence at a time (one round trip per block)
# A pre-call chain asks whether its call was answered or ended just before its first hand-over,
# moments after its call event was accepted; the flush that accepted the event read the call's
# phases too, and that read answers if it is younger than this (s). A chain that got there later
# (it waited for a gateway, or was resumed) reads them again.
PHASES_FRESH = 0.25

TABLES = (
    "objects", "audit", "api_keys", "calls", "deliveries", "attempts", "message_ids", "receipts",
    "optouts", "taps", "impressions", "replies_seen", "charges", "media", "chatbot_owners",
    "console_sessions", "active_chains",
)  # fmt: skip


# Every statement of the store reads or writes rows by key or by an index range. PostgreSQL
# caches a generic plan for each prepared statement, planned with the statistics of the moment:
# on a young table (a new deployment, a table that grew since autovacuum last analysed it) those
# say "a few rows", the plan scans the whole table, and that plan stays while the table grows,
# so every group commit would read every row. With sequential scans priced out the plans use
# the indexes whatever the statistics say (a table with no usable index is still scanned). JIT
# is off: these statements take microseconds, and a plan priced that way must never be compiled.
SESSION_SETTINGS = {"enable_seqscan": "off", "jit": "off"}
# A server that accepts connections and answers nothing (stopped, a partition without resets) is
# an outage after these many seconds, not a wait as long as it lasts: opening a connection, and
# any statement of the store's own (the group commit's flushes have their own bound, pgflush.py).
# A statement that times out may still commit when the server answers: the store's writes are
# idempotent (inserts that skip what exists, updates that set values), or counted under a key
# that is checked first (a tap's message id), so running one again changes nothing twice.
CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 10.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: the store sets no session state (no LISTEN, SET
    or session advisory lock on pool connections; its locks are transaction-scoped), so
    asyncpg's default reset (four statements per checkout, most of the statements of a call
    event) has nothing to undo."""


def _delivery(r: asyncpg.Record) -> Delivery:
    return Delivery(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], jsonio.loads(r[9]), jsonio.loads(r[10]),
        r[11], r[12], r[13], r[14], r[15], r[16], r[17],
    )  # fmt: skip


def _attempt(r: asyncpg.Record) -> Attempt:
    return Attempt(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])


def _check_fields(table: str, fields: dict[str, Any]) -> None:
    bad = set(fields) - UPDATABLE[table]
    if bad:
        raise ValueError(f"cannot update {table}.{sorted(bad)}")


class PgDeliveryStore(PgConsoleRows):
    shared = True  # every worker of every host

    def __init__(self, url: str, *, migrate: str = "auto", min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.migrate = migrate  # schema migrations at start: auto | check | off
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._block: contextvars.ContextVar[Block | None] = contextvars.ContextVar(
            "delivery_tx", default=None
        )
        self.writes = GroupCommit(lambda: self.pool)
        self._ids: list[int] = []  # attempt ids taken from the sequence, not used yet
        self._ids_coming: asyncio.Future[None] | None = None  # the block being fetched
        self._phases_seen: dict[str, tuple[set[str], float]] = {}  # call id → phases read at acceptance
        self._docs: dict[tuple[Any, ...], Any] = {}
        self._keys: dict[str, tuple[str, str | None]] = {}
        self._optouts: set[tuple[str, str]] = set()
        self.generation = 0

    # -- lifetime ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, bring the schema up to date, listen for other workers' changes. Whatever it
        opened is closed again if any step fails."""
        quiet_pool_warnings()  # an outage is one line (infra/outage.py), not the pool's every retry
        try:
            # Migrations first, on a connection of their own: they take as long as they take.
            conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
            try:
                await migrate_postgres(conn, MIGRATIONS, self.migrate)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                reset=_keep_session,
                server_settings=SESSION_SETTINGS,
                timeout=CONNECT_TIMEOUT,
                command_timeout=STATEMENT_TIMEOUT,
            )
            self._listener = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
            await self._listener.add_listener(CHANNEL, self._heard)
            rows = await self._pool.fetch("SELECT enterprise, number FROM optouts")
        except BaseException:
            await self.stop()
            raise
        self._optouts = {(r[0], r[1]) for r in rows}

    async def stop(self) -> None:
        if self._pool is not None:
            await self.writes.close()  # what is queued is committed before the pool goes
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        """Another process (or this one) committed a change the read caches hold."""
        what, _, rest = payload.partition(":")
        if what == "optout":
            enterprise, _, number = rest.partition("|")
            self._optouts.add((enterprise, number))
            return
        self._forget()

    def _forget(self) -> None:
        self._docs.clear()
        self._keys.clear()
        self.generation += 1

    # -- statements ------------------------------------------------------------------------------
    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("delivery store is not started")
        return self._pool

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[None]:
        """All or nothing. The hot-path writes of the block (pgbatch.py, pgflush.py) join the shared group
        commit together at its end; a block that runs a statement of its own (a read, a
        configuration write) holds a connection and a transaction from then on, and its queued
        writes run there. A nested block is a savepoint (on a connection) or a mark in the list."""
        outer = self._block.get()
        if outer is not None:
            if outer.conn is not None:
                async with outer.conn.transaction():
                    yield None
                return
            mark = len(outer.writes)
            try:
                yield None
            except BaseException:
                del outer.writes[mark:]
                raise
            return
        block = Block()
        token = self._block.set(block)
        try:
            try:
                yield None
            except BaseException:
                if block.tr is not None:
                    await block.tr.rollback()
                self._forget()  # the caches may hold what was rolled back
                raise
            if block.conn is None or block.tr is None:
                self.writes.add_block(block)
                return
            tell = await block.batch().apply(block.conn)
            await block.tr.commit()
            tell()
        finally:
            self._block.reset(token)
            if block.conn is not None:
                await self.pool.release(block.conn)

    async def _conn(self) -> asyncpg.Connection | asyncpg.Pool:
        """Where a statement of the store's own runs: the block's connection (taken, and its
        queued writes run, at the block's first statement), or the pool once every write queued
        before it has committed (so a read sees them, and writes to one row keep their order)."""
        block = self._block.get()
        if block is None:
            await self.writes.settled()
            return self.pool
        if block.conn is None:
            await self.writes.settled()
            conn = await self.pool.acquire(timeout=CONNECT_TIMEOUT)
            tr = conn.transaction()
            try:
                await tr.start()
            except BaseException:
                await self.pool.release(conn)
                raise
            block.conn, block.tr = conn, tr
        if block.writes:  # their results (a new call event?) are those of this transaction
            (await block.batch().apply(block.conn))()
        return block.conn

    def _queue(self, write: Write, fut: asyncio.Future[bool] | None = None) -> None:
        block = self._block.get()
        if block is None:
            self.writes.add(write, fut)
        else:
            block.writes.append((write, fut))

    async def _fetch_committed(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read of rows this process only writes with awaited commits (call events) or keeps in
        memory until they commit (message ids it submitted): no need to wait for the group commit."""
        block = self._block.get()
        if block is not None and block.conn is not None:
            return await block.conn.fetch(sql, *args)
        return await self.pool.fetch(sql, *args)

    # A statement that answered ends an outage the record holds (infra/outage.py: one line);
    # a failed one reaches the server's middleware or the chain, which tell an outage from a bug.
    async def _execute(self, sql: str, *args: Any) -> str:
        status = await (await self._conn()).execute(sql, *args)
        outages.up("database")
        return status

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows = await (await self._conn()).fetch(sql, *args)
        outages.up("database")
        return rows

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row = await (await self._conn()).fetchrow(sql, *args)
        outages.up("database")
        return row

    async def _changed(self, payload: str = "docs") -> None:
        """Announce a change at commit (NOTIFY is transactional) and drop this process's caches now."""
        self._forget()
        await self._execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    async def durable(self) -> None:
        """Return once every write made so far is committed (the next group commit)."""
        await self.writes.settled()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1", timeout=5)
        outages.up("database")

    async def snapshot(self) -> list[str]:
        await self.writes.settled()
        out: list[str] = []
        async with self.pool.acquire() as conn:
            for table in TABLES:
                rows = await conn.fetch(f"SELECT * FROM {table}")  # names from TABLES only
                out += [f"{table} {tuple(r.values())!r}" for r in rows]
        return sorted(out)

    # -- resources -----------------------------------------------------------------------------
    async def put(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> None:
        await self._execute(
            "INSERT INTO objects VALUES ($1,$2,$3,$4) ON CONFLICT (kind, enterprise, id) "
            "DO UPDATE SET body = excluded.body",
            kind, enterprise, id, jsonio.dumps_str(body),
        )  # fmt: skip
        await self._changed()

    async def get(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None:
        """A document (shared from the cache: callers copy before changing it)."""
        key = ("get", kind, enterprise, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        row = await self._fetchrow(
            "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 AND id=$3", kind, enterprise, id
        )
        doc = jsonio.loads(row[0]) if row else None
        if generation == self.generation:  # not invalidated while the query ran
            self._docs[key] = doc
        return doc  # type: ignore[no-any-return]

    async def find(self, kind: str, id: str) -> tuple[str, dict[str, Any]] | None:
        """An object by id in any enterprise (lines: a number belongs to one enterprise)."""
        key = ("find", kind, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        row = await self._fetchrow("SELECT enterprise, body FROM objects WHERE kind=$1 AND id=$2", kind, id)
        hit = (row[0], jsonio.loads(row[1])) if row else None
        if generation == self.generation:
            self._docs[key] = hit
        return hit

    async def list(self, kind: str, enterprise: str | None = None) -> list[dict[str, Any]]:
        key = ("list", kind, enterprise)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        if enterprise is None:
            rows = await self._fetch("SELECT body FROM objects WHERE kind=$1 ORDER BY id", kind)
        else:
            rows = await self._fetch(
                "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 ORDER BY id", kind, enterprise
            )
        out = [jsonio.loads(r[0]) for r in rows]
        if generation == self.generation:
            self._docs[key] = out
        return out

    async def delete(self, kind: str, enterprise: str, id: str) -> bool:
        status = await self._execute(
            "DELETE FROM objects WHERE kind=$1 AND enterprise=$2 AND id=$3", kind, enterprise, id
        )
        await self._changed()
        return status != "DELETE 0"

    async def delete_enterprise(self, enterprise: str) -> None:
        async with self.tx():
            await self._execute("DELETE FROM objects WHERE enterprise=$1", enterprise)
            await self._execute("DELETE FROM objects WHERE kind='enterprise' AND id=$1", enterprise)
            await self._execute("DELETE FROM api_keys WHERE enterprise=$1", enterprise)
            await self._execute("DELETE FROM chatbot_owners WHERE enterprise=$1", enterprise)
            await self._execute("DELETE FROM media WHERE enterprise=$1", enterprise)
            await self._changed()

    async def claim_chatbot(self, enterprise: str, bot: str) -> bool:
        """Make `bot` (a `bot_id`; "" for none) the enterprise's one chatbot; False, changing
        nothing, if another enterprise owns it (a concurrent claim waits on the primary key)."""
        if bot:
            await self._execute(
                "INSERT INTO chatbot_owners VALUES ($1,$2) ON CONFLICT (bot) DO NOTHING", bot, enterprise
            )
            row = await self._fetchrow("SELECT enterprise FROM chatbot_owners WHERE bot=$1", bot)
            if row is None or row[0] != enterprise:
                return False
        await self._execute("DELETE FROM chatbot_owners WHERE enterprise=$1 AND bot<>$2", enterprise, bot)
        return True

    # -- the media library ----------------------------------------------------------------------
    async def add_media(self, enterprise: str, row: dict[str, Any], quota: int) -> str:
        async with self.tx():
            # one enterprise's uploads one at a time, on every worker: the quota sum stays true
            await self._execute("SELECT pg_advisory_xact_lock(hashtext($1))", "media:" + enterprise)
            if await self._fetchrow(
                "SELECT 1 FROM media WHERE enterprise=$1 AND id=$2", enterprise, row["id"]
            ):
                return "exists"
            used = await self._fetchrow(
                "SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=$1", enterprise
            )
            assert used is not None
            if int(used[0]) + row["bytes"] > quota:
                return "over_quota"
            await self._execute(
                f"INSERT INTO media (enterprise, {MEDIA_COLUMNS}) VALUES ({MEDIA_PARAMS})",
                enterprise, *(row[c] for c in MEDIA_FIELDS),
            )  # fmt: skip
        return "added"

    async def media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        r = await self._fetchrow(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 AND id=$2", enterprise, id
        )
        return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None

    async def media_list(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 ORDER BY created, id", enterprise
        )
        return [dict(zip(MEDIA_FIELDS, r, strict=True)) for r in rows]

    async def media_named(self, enterprise: str, name: str) -> dict[str, Any] | None:
        r = await self._fetchrow(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 AND name=$2 ORDER BY created LIMIT 1",
            enterprise,
            name,
        )
        return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None

    async def media_used(self, enterprise: str) -> int:
        r = await self._fetchrow("SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=$1", enterprise)
        return int(r[0]) if r else 0

    async def delete_media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        r = await self._fetchrow(
            f"DELETE FROM media WHERE enterprise=$1 AND id=$2 RETURNING {MEDIA_COLUMNS}", enterprise, id
        )
        return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None

    async def media_users(self, id: str) -> int:
        r = await self._fetchrow("SELECT count(*) FROM media WHERE id=$1", id)
        return int(r[0]) if r else 0

    async def audit(
        self, actor: str, enterprise: str, target: str, action: str, detail: dict[str, Any]
    ) -> None:
        await self._execute(
            "INSERT INTO audit (at, actor, enterprise, target, action, detail) VALUES ($1,$2,$3,$4,$5,$6)",
            time.time(), actor, enterprise, target, action, jsonio.dumps_str(detail),
        )  # fmt: skip

    async def audit_log(self, enterprise: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT at, actor, target, action, detail FROM audit WHERE enterprise=$1 "
            "ORDER BY seq DESC LIMIT $2",
            enterprise, limit,
        )  # fmt: skip
        return [
            {"at": r[0], "actor": r[1], "target": r[2], "action": r[3], "detail": jsonio.loads(r[4])}
            for r in rows
        ]

    # -- API keys ----------------------------------------------------------------------------
    async def add_key(self, key_hash: str, enterprise: str | None, label: str) -> None:
        await self._execute(
            "INSERT INTO api_keys VALUES ($1,$2,$3,$4) ON CONFLICT (hash) DO UPDATE SET "
            "enterprise = excluded.enterprise, label = excluded.label, created = excluded.created",
            key_hash, enterprise, label, time.time(),
        )  # fmt: skip
        await self._changed()

    async def key(self, key_hash: str) -> tuple[str, str | None] | None:
        if key_hash in self._keys:
            return self._keys[key_hash]
        generation = self.generation
        row = await self._fetchrow("SELECT hash, enterprise FROM api_keys WHERE hash=$1", key_hash)
        hit = (row[0], row[1]) if row else None
        # unknown keys are not cached: a flood of guesses must not grow memory
        if hit is not None and generation == self.generation:
            self._keys[key_hash] = hit
        return hit

    # -- calls and deliveries ------------------------------------------------------------------
    async def accept_call(self, d: Delivery, owner: str = "", lease_until: float = 0.0) -> bool:
        """Record a call event with its delivery, leased to `owner`; False (and neither written)
        if this call id and phase were seen before. One group-committed statement for every
        call event of the flush."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue(
            AcceptCall(
                call_id=d.call_id, phase=d.phase, event_at=d.event_at, id=d.id, enterprise=d.enterprise,
                line=d.line, recipient=d.recipient, card=d.card, template=d.template, kind=d.kind,
                data=jsonio.dumps_str(d.data), chain=jsonio.dumps_str(d.chain), step=d.step, state=d.state,
                reason=d.reason, channel=d.channel, created=d.created, updated=d.updated, owner=owner,
                lease_until=lease_until,
            ),
            fut,
        )  # fmt: skip
        if self._block.get() is not None:
            await self._conn()  # inside a block the answer needs the block's own statement
            return await fut
        asked: asyncio.Future[set[str]] | None = None
        if d.phase == "ringing" and d.state == "active":  # its chain asks at once whether the call moved on
            asked = asyncio.get_running_loop().create_future()
            self.writes.add(AskPhases(d.call_id), asked)  # the same flush answers both
        new = await fut
        if new and asked is not None:
            self._phases_seen[d.call_id] = (asked.result(), time.monotonic())
            while len(self._phases_seen) > 4096:  # chains that never asked (dropped, or gone)
                del self._phases_seen[next(iter(self._phases_seen))]
        return new

    async def call_phases(self, call_id: str) -> set[str]:
        """Asked by every pre-call chain before its hand-over: the question rides the next group
        commit (one of its statement's rows), so it costs no statement of its own."""
        seen = self._phases_seen.pop(call_id, None)
        if seen is not None and time.monotonic() - seen[1] < PHASES_FRESH:
            return set(seen[0])  # read with the call's acceptance, a moment ago
        if self._block.get() is not None:
            rows = await self._fetch_committed("SELECT phase FROM calls WHERE call_id=$1", call_id)
            return {r[0] for r in rows}
        fut: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self.writes.add(AskPhases(call_id), fut)
        return await fut

    async def delivery(self, id: str) -> Delivery | None:
        row = await self._fetchrow(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id=$1", id)
        return _delivery(row) if row else None

    async def deliveries_of_call(self, call_id: str) -> list[Delivery]:
        rows = await self._fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE call_id=$1 ORDER BY created", call_id
        )
        return [_delivery(r) for r in rows]

    async def active_deliveries(self) -> list[str]:
        return [r[0] for r in await self._fetch("SELECT delivery FROM active_chains")]

    async def queue(self) -> tuple[int, int]:
        row = await self._fetchrow(QUEUE)
        assert row is not None
        return int(row[0]), int(row[1])

    async def update_delivery(self, id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        _check_fields("deliveries", fields)
        self._queue(UpdateDelivery(id, fields))

    # -- leases: which worker runs each active chain (`active_chains`) ------------------------------
    async def claim_chains(self, owner: str, now: float, until: float, limit: int) -> list[str]:
        """Rows locked by another claimer are skipped, so two workers never take the same chain."""
        rows = await self._fetch(
            "UPDATE active_chains SET owner=$1, lease_until=$3 WHERE delivery IN (SELECT delivery "
            "FROM active_chains WHERE lease_until < $2 ORDER BY lease_until LIMIT $4 "
            "FOR UPDATE SKIP LOCKED) RETURNING delivery",
            owner, now, until, limit,
        )  # fmt: skip
        return [r[0] for r in rows]

    async def renew(self, owner: str, deliveries: list[str], until: float) -> set[str]:
        """One delivery (a chain's fence before its hand-over) rides the group commit; many (the
        lease keeper's round) are one statement of their own."""
        if not deliveries:
            return set()
        if len(deliveries) == 1:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._queue(RenewLease(deliveries[0], owner, until), fut)
            if self._block.get() is not None:
                await self._conn()
            return set(deliveries) if await fut else set()
        rows = await self._fetch(
            "UPDATE active_chains SET lease_until=$3 WHERE delivery = ANY($2::text[]) AND owner=$1 "
            "RETURNING delivery",
            owner, deliveries, until,
        )  # fmt: skip
        return {r[0] for r in rows}

    async def release(self, owner: str, deliveries: list[str]) -> None:
        if deliveries:
            await self._execute(
                "UPDATE active_chains SET lease_until=0 WHERE delivery = ANY($2::text[]) AND owner=$1",
                owner,
                deliveries,
            )

    async def attempt(self, delivery: str, step: int) -> Attempt | None:
        row = await self._fetchrow(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 AND step=$2", delivery, step
        )
        return _attempt(row) if row else None

    async def attempt_receipts(self, id: int) -> tuple[Attempt | None, int, list[str]]:
        """An attempt, how many message ids it has and the receipt stats they got: one read."""
        rows = await self._fetch(
            f"SELECT {', '.join('a.' + c for c in ATTEMPT_COLUMNS.split(', '))}, m.message_id, r.stat "
            "FROM attempts a LEFT JOIN message_ids m ON m.attempt = a.id "
            "LEFT JOIN receipts r ON r.message_id = m.message_id WHERE a.id=$1",
            id,
        )
        if not rows:
            return None, 0, []
        n = ATTEMPT_WIDTH  # the message id and the stat follow the attempt's columns
        total = sum(1 for r in rows if r[n] is not None)
        return _attempt(rows[0]), total, [r[n + 1] for r in rows if r[n + 1] is not None]

    async def attempts(self, delivery: str) -> list[Attempt]:
        rows = await self._fetch(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery=$1 ORDER BY step", delivery
        )
        return [_attempt(r) for r in rows]

    async def add_attempt(
        self, delivery: str, step: int, channel: str, segments: int, units: int, deadline: float
    ) -> Attempt:
        """Its id comes from the sequence ahead of the write (a block of ids per round trip), so
        the row can ride the group commit."""
        id_ = await self._attempt_id()
        now = time.time()
        self._queue(
            InsertAttempt(id_, delivery, step, channel, "sending", segments, units, now, deadline, None, "")
        )
        return Attempt(id_, delivery, step, channel, "sending", segments, units, now, deadline, None, "")

    async def _attempt_id(self) -> int:
        """The next attempt id. One block is fetched at a time, whoever needs ids meanwhile waits
        for it, and the next block is fetched in the background while a quarter of this one is left."""
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
        try:
            rows = await self.pool.fetch(
                "SELECT nextval(pg_get_serial_sequence('attempts', 'id')) FROM generate_series(1, $1)",
                ID_BLOCK,
            )
            self._ids = sorted([*self._ids, *(int(r[0]) for r in rows)], reverse=True)  # pop(): smallest
        finally:
            self._ids_coming = None

    async def update_attempt(self, id: int, **fields: Any) -> None:
        _check_fields("attempts", fields)
        self._queue(UpdateAttempt(id, fields))

    async def add_message_ids(self, attempt: int, ids: list[str]) -> None:
        for m in ids:
            self._queue(MessageId(m, attempt))

    async def receipt(self, message_id: str, stat: str, source: str = "") -> None:
        self._queue(Receipt(message_id, stat, time.time(), source))

    async def adopt_receipts(self, attempt: int, recipient: str, since: float, limit: int) -> int:
        rows = await self._fetch(
            "INSERT INTO message_ids (message_id, attempt, stat) SELECT r.message_id, $1, NULL "
            "FROM receipts r WHERE r.source = $2 AND r.at >= $3 AND NOT EXISTS "
            "(SELECT 1 FROM message_ids m WHERE m.message_id = r.message_id) ORDER BY r.at LIMIT $4 "
            "ON CONFLICT DO NOTHING RETURNING message_id",
            attempt, recipient, since, limit,
        )  # fmt: skip
        return len(rows)

    async def attempt_of_message(self, message_id: str) -> int | None:
        rows = await self._fetch_committed("SELECT attempt FROM message_ids WHERE message_id=$1", message_id)
        return int(rows[0][0]) if rows else None

    async def waiting_attempts_of(self, message_ids: list[str]) -> list[int]:
        rows = await self._fetch(
            "SELECT DISTINCT a.id FROM message_ids m JOIN attempts a ON a.id = m.attempt "
            "WHERE m.message_id = ANY($1::text[]) AND a.state IN ('submitted', 'unknown')",
            message_ids,
        )
        return [int(r[0]) for r in rows]

    # -- opt-outs and ad impressions -----------------------------------------------------------
    async def opt_out(self, enterprise: str, number: str, channel: str, text: str) -> None:
        await self._execute(
            "INSERT INTO optouts VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
            enterprise, number, time.time(), channel, text,
        )  # fmt: skip
        await self._execute("SELECT pg_notify($1, $2)", CHANNEL, f"optout:{enterprise}|{number}")
        self._optouts.add((enterprise, number))

    async def opted_out(self, enterprise: str, number: str) -> bool:
        return (enterprise, number) in self._optouts

    async def optouts(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT number, at, channel, text FROM optouts WHERE enterprise=$1 ORDER BY at", enterprise
        )
        return [{"number": r[0], "at": r[1], "channel": r[2], "text": r[3]} for r in rows]

    async def active_for(self, enterprise: str, recipient: str) -> list[str]:
        rows = await self._fetch(
            "SELECT id FROM deliveries WHERE recipient=$1 AND enterprise=$2 AND state='active'",
            recipient, enterprise,
        )  # fmt: skip
        return [r[0] for r in rows]

    async def last_delivered(
        self, enterprise: str | Sequence[str], recipient: str, kind: str | None
    ) -> tuple[str, float, str, str] | None:
        ents = [enterprise] if isinstance(enterprise, str) else list(enterprise)
        if not ents:
            return None
        row = await self._fetchrow(
            "SELECT card, updated, id, enterprise FROM deliveries WHERE enterprise = ANY($1::text[]) "
            "AND recipient=$2 AND ($3::text IS NULL OR kind=$3) AND state='delivered' "
            "ORDER BY updated DESC LIMIT 1",
            ents, recipient, kind,
        )  # fmt: skip
        return (row[0], row[1], row[2], row[3]) if row else None

    async def first_reply(self, key: str, now: float, keep: float = 7 * 86400) -> bool:
        await self._execute("DELETE FROM replies_seen WHERE at < $1", now - keep)
        status = await self._execute(
            "INSERT INTO replies_seen VALUES ($1,$2) ON CONFLICT DO NOTHING", key, now
        )
        return status == "INSERT 0 1"

    async def count_tap(self, enterprise: str, card: str, button: str, day: str) -> None:
        await self._execute(
            "INSERT INTO taps VALUES ($1,$2,$3,$4,1) ON CONFLICT (enterprise, card, button, day) "
            "DO UPDATE SET n = taps.n + 1",
            enterprise, card, button, day,
        )  # fmt: skip

    async def taps(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT card, button, day, n FROM taps WHERE enterprise=$1 ORDER BY day, card, n DESC", enterprise
        )
        return [{"card": r[0], "button": r[1], "day": r[2], "taps": r[3]} for r in rows]

    async def count_impression(self, enterprise: str, card: str, day: str, taps: int = 0) -> None:
        await self._execute(
            "INSERT INTO impressions VALUES ($1,$2,$3,$4,$5) ON CONFLICT (enterprise, card, day) "
            "DO UPDATE SET shown = impressions.shown + excluded.shown, "
            "taps = impressions.taps + excluded.taps",
            enterprise, card, day, 0 if taps else 1, taps,
        )  # fmt: skip

    async def impressions(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT card, day, shown, taps FROM impressions WHERE enterprise=$1 ORDER BY day, card",
            enterprise,
        )
        return [{"card": r[0], "day": r[1], "impressions": r[2], "taps": r[3]} for r in rows]

    async def delivery_stats(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT to_char(to_timestamp(a.started + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
            f"a.channel, {OUTCOME} AS outcome, count(*), "
            "avg(CASE WHEN a.done IS NOT NULL THEN a.done - a.started END) "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery WHERE d.enterprise=$1 "
            "GROUP BY day, a.channel, outcome ORDER BY day, a.channel, outcome",
            enterprise,
        )
        return attempt_stats(rows)

    # -- metering ledger (metering/ledger.py) ------------------------------------------------------
    async def record_charge(self, key: str, charge: Charge, e: LedgerEntry) -> None:
        self._queue(
            RecordCharge(
                key=key, enterprise=e.enterprise, package=charge.package, line=e.line, channel=e.channel,
                units=charge.units, overage=charge.overage, cost=charge.cost, day=e.day, at=e.at,
            ),
        )  # fmt: skip

    async def mark_refunded(self, key: str) -> None:
        self._queue(Refund(key))

    async def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
        cols = [c for c in by if c in GROUPS] or ["day"]
        sel = ", ".join(cols)  # only names from GROUPS reach the SQL text
        rows = await self._fetch(
            f"SELECT {sel}, count(*), sum(units), sum(overage), round(sum(cost)::numeric, 4)::float8 "
            f"FROM charges WHERE enterprise=$1 AND refunded=0 GROUP BY {sel} ORDER BY {sel}",
            enterprise,
        )
        return usage_dicts(cols, rows)
