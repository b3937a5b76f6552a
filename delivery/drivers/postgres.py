"""The PostgreSQL driver: the store's statements on a pool every worker of a fleet shares.

- Transactions: `transaction()` binds a pooled connection to the task (a context variable) and
  every statement inside it runs on that connection, in that transaction; a nested block is a
  savepoint. Outside a block each statement is autocommitted. A statement returns only once
  committed, so `durable()` has only the group commit's queue to wait for.
- The hot-path writes (typed records, pgbatch.py) are queued for the group commit (pgflush.py);
  a read waits until every write queued before it has committed, so it sees them. A block's
  queued writes join the shared flush together at its end, or run on its own connection once it
  runs a statement of its own.
- Notifications: NOTIFY in the writing transaction (delivered at its commit), heard by every
  worker's listener, this one's included; this process's listeners hear them at once as well.
- Outages: a statement that answered ends an outage the record holds (infra/outage.py: one
  line); a failed one reaches the server's middleware or the chain, which tell an outage from a
  bug. Opening a connection and every statement have a time bound.
- Failover: a URL naming several hosts connects to the writable one (pghosts.py). The first
  statement that finds its server gone (a dropped or timed-out connection) or read-only (a
  primary fenced or turned standby: an outage too) drops every pooled connection, so the next
  ones are opened to the new primary; a dying server's other sessions, which may answer a moment
  longer, are not used again and do not end the outage. The listener connects again by itself.

The schema is `migrations/postgresql/`, applied at start (infra/migrations_pg.py) under an
advisory lock, so workers starting at once do not race.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from infra.migrations import Migrations
from infra.migrations_pg import migrate_postgres
from infra.outage import Unavailable, backend_of, outages, quiet_pool_warnings

from ..pgbatch import Block, Write
from ..pgflush import GroupCommit
from . import RELISTEN, Row
from .pghosts import READ_ONLY, HostChooser, NoWritableServer

MIGRATIONS = Migrations.load("delivery", "postgresql", database="delivery")
CHANNEL = "mingpian_delivery"  # NOTIFY channel of cache invalidations
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
LISTEN_RETRY = (0.2, 5.0)  # s: first and longest wait between attempts to connect the listener again
# Whether this session may write: on a standby (recovery) or a server fenced with
# default_transaction_read_only, no (the readiness probe and the chains' outage probe ask it).
WRITABLE = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: the store sets no session state (no LISTEN, SET
    or session advisory lock on pool connections; its locks are transaction-scoped), so
    asyncpg's default reset (four statements per checkout, most of the statements of a call
    event) has nothing to undo."""


def changed_rows(status: str) -> int:
    """The row count of a command status ("INSERT 0 1", "UPDATE 3", "DELETE 0"); 0 for others."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class PgDriver:
    name = "postgresql"
    shared = True  # every worker of every host

    def __init__(
        self,
        url: str,
        tables: Sequence[str],
        *,
        migrate: str = "auto",
        min_size: int = 2,
        max_size: int = 10,
    ) -> None:
        self.url = url
        self.tables = tuple(tables)  # what a snapshot dumps
        self.migrate = migrate  # schema migrations at start: auto | check | off
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._block: contextvars.ContextVar[Block | None] = contextvars.ContextVar(
            "delivery_tx", default=None
        )
        self._hear: list[Callable[[str], None]] = []
        self._relisten: asyncio.Task[None] | None = None
        self._stopping = False
        self.hosts = HostChooser(url)  # the writable server among the URL's hosts
        self.group = GroupCommit(lambda: self.pool, self._drop_listener)
        self.writes = self  # the group commit's queue is this driver's (GroupWrites)

    # -- lifetime ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, bring the schema up to date, listen for other workers' changes. Whatever it
        opened is closed again if any step fails."""
        quiet_pool_warnings()  # an outage is one line (infra/outage.py), not the pool's every retry
        try:
            # Migrations first, on a connection of their own: they take as long as they take.
            self._stopping = False
            conn = await self.hosts.connect(timeout=CONNECT_TIMEOUT)
            try:
                await migrate_postgres(conn, MIGRATIONS, self.migrate)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.url,
                connect=self.hosts.connect,
                min_size=self.min_size,
                max_size=self.max_size,
                reset=_keep_session,
                server_settings=SESSION_SETTINGS,
                timeout=CONNECT_TIMEOUT,
                command_timeout=STATEMENT_TIMEOUT,
            )
            await self._listen()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._stopping = True
        if self._relisten is not None:
            self._relisten.cancel()
            await asyncio.gather(self._relisten, return_exceptions=True)
            self._relisten = None
        if self._pool is not None:
            await self.group.close()  # what is queued is committed before the pool goes
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("delivery store is not started")
        return self._pool

    # -- notifications ---------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Open the listener's connection (to the writable server: a standby refuses LISTEN)."""
        conn = await self.hosts.connect(timeout=CONNECT_TIMEOUT)
        try:
            await conn.add_listener(CHANNEL, self._heard)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn

    def _drop_listener(self) -> None:
        """The pool's connections were dropped (the server died or takes no writes): the
        listener's goes too, and connects again to the writable server, where the other
        workers' notifications are sent now (a fenced primary would still take its LISTEN)."""
        if self._listener is not None:
            self._listener.terminate()  # its termination listener connects again

    def _listener_lost(self, conn: Any) -> None:
        """The listener's server went away (a restart, a failover): connect again, in the back."""
        if conn is not self._listener or self._stopping:
            return
        self._listener = None
        if self._relisten is None:  # a fresh context: never a store transaction of whoever dropped it
            self._relisten = asyncio.get_running_loop().create_task(
                self._listen_again(), name="delivery-relisten", context=contextvars.Context()
            )

    async def _listen_again(self) -> None:
        wait, longest = LISTEN_RETRY
        try:
            while not self._stopping:
                await asyncio.sleep(wait)
                try:
                    await self._listen()
                except Exception:  # still away: the outage is noted where a request meets it
                    wait = min(wait * 2, longest)
                    continue
                for hear in self._hear:  # notifications may have been missed: caches start afresh
                    hear("rollback")
                    hear(RELISTEN)
                return
        finally:
            self._relisten = None

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for hear in self._hear:
            hear(payload)

    def listen(self, hear: Callable[[str], None]) -> None:
        self._hear.append(hear)

    async def notify(self, payload: str) -> None:
        for hear in self._hear:
            hear(payload)
        await self.run("SELECT pg_notify($1, $2)", CHANNEL, payload)

    # -- transactions and the group commit's queue ------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """All or nothing. The queued writes of the block join the shared group commit together
        at its end; a block that runs a statement of its own (a read, a configuration write)
        holds a connection and a transaction from then on, and its queued writes run there. A
        nested block is a savepoint (on a connection) or a mark in the list."""
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
                for hear in self._hear:
                    hear("rollback")  # the caches may hold what was rolled back
                raise
            if block.conn is None or block.tr is None:
                self.group.add_block(block)
                return
            try:
                tell = await block.batch().apply(block.conn)
                await block.tr.commit()
            except Exception as exc:
                await self._failed(exc)
                raise
            tell()
        finally:
            self._block.reset(token)
            if block.conn is not None:
                await self.pool.release(block.conn)

    def queue(self, write: Write, fut: asyncio.Future[Any] | None = None) -> None:
        block = self._block.get()
        if block is None:
            self.group.add(write, fut)
        else:
            block.writes.append((write, fut))

    def in_block(self) -> bool:
        return self._block.get() is not None

    async def join(self) -> None:
        await self._conn()

    async def fetch_ids(self, sql: str, n: int) -> list[int]:
        return [int(r[0]) for r in await self.pool.fetch(sql, n)]

    async def durable(self) -> None:
        """Return once every write made so far is committed (the next group commit)."""
        await self.group.settled()

    async def _conn(self) -> asyncpg.Connection | asyncpg.Pool:
        """Where a statement runs: the block's connection (taken, and its queued writes run, at
        the block's first statement), or the pool once every write queued before it has
        committed (so a read sees them, and writes to one row keep their order)."""
        block = self._block.get()
        if block is None:
            await self.group.settled()
            return self.pool
        if block.conn is None:
            await self.group.settled()
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

    # -- statements ------------------------------------------------------------------------------
    async def one(self, sql: str, *args: Any) -> Row | None:
        epoch = self.group.epoch
        try:
            row = await (await self._conn()).fetchrow(sql, *args)
        except Exception as exc:
            await self._failed(exc)
            raise
        self._answered(epoch)
        return row  # type: ignore[no-any-return]

    async def all(self, sql: str, *args: Any) -> list[Row]:
        epoch = self.group.epoch
        try:
            rows = await (await self._conn()).fetch(sql, *args)
        except Exception as exc:
            await self._failed(exc)
            raise
        self._answered(epoch)
        return rows  # type: ignore[no-any-return]

    async def committed(self, sql: str, *args: Any) -> list[Row]:
        block = self._block.get()
        if block is not None and block.conn is not None:
            return await block.conn.fetch(sql, *args)  # type: ignore[no-any-return]
        return await self.pool.fetch(sql, *args)  # type: ignore[no-any-return]

    async def run(self, sql: str, *args: Any) -> int:
        epoch = self.group.epoch
        try:
            status = await (await self._conn()).execute(sql, *args)
        except Exception as exc:
            await self._failed(exc)
            raise
        self._answered(epoch)
        return changed_rows(status)

    async def insert(self, sql: str, *args: Any) -> int:
        epoch = self.group.epoch
        try:
            key = await (await self._conn()).fetchval(sql, *args)
        except Exception as exc:
            await self._failed(exc)
            raise
        self._answered(epoch)
        return int(key)

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        epoch = self.group.epoch
        try:
            await (await self._conn()).executemany(sql, rows)
        except Exception as exc:
            await self._failed(exc)
            raise
        self._answered(epoch)

    async def _failed(self, exc: BaseException) -> None:
        """A statement failed. If the server is gone (its connection dropped or timed out) or
        takes no writes (a read-only refusal: a fenced primary, a standby), every pooled
        connection to it is dropped at this first sign, so the next statements run on new
        connections to the writable server (and none on another session of a server whose
        postmaster died); a read-only refusal is an outage until then (raised as one)."""
        if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
            outages.down("database", exc)
            await self.group.drop_connections()
            raise Unavailable("database", exc) from exc
        if not isinstance(exc, Unavailable) and backend_of(exc) == "database":
            await self.group.drop_connections()

    def _answered(self, epoch: int) -> None:
        """A statement answered: the end of an outage, unless it ran on a connection of before
        the last drop (a dying server's last sessions answer a moment after its first failed)."""
        if epoch == self.group.epoch:
            outages.up("database")

    async def lock(self, key: str) -> None:
        await self.run("SELECT pg_advisory_xact_lock(hashtext($1))", key)

    async def ping(self) -> None:
        """The server answers and takes writes (a standby or a fenced primary is not ready)."""
        epoch = self.group.epoch
        try:
            writable = await self.pool.fetchval(WRITABLE, timeout=5)
        except Exception as exc:
            await self._failed(exc)
            raise
        if not writable:
            exc = NoWritableServer({"pooled connection": READ_ONLY})
            outages.down("database", exc)
            await self.group.drop_connections()
            raise exc
        self._answered(epoch)

    async def snapshot(self) -> list[str]:
        await self.group.settled()
        out: list[str] = []
        async with self.pool.acquire() as conn:
            for table in self.tables:
                rows = await conn.fetch(f"SELECT * FROM {table}")  # names from the store's list only
                out += [f"{table} {tuple(r.values())!r}" for r in rows]
        return sorted(out)
