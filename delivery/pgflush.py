"""Group commit for the PostgreSQL store, its schedule: when a flush of the queued writes runs, on
which connection, and what a failed one does. What a flush sends is pgbatch.py.

When a flush runs:
- at once (after the event loop has served every task already ready, so concurrent requests
  join) when someone waits: `settled()` (the store's `durable()`, a read of the hot tables, a
  result such as "was this call event new?");
- otherwise within `TICK` seconds.
One flush runs at a time, so writes to one row commit in the order they were made; what is
queued while a flush runs goes in the next.

Every write is idempotent (pgbatch.py), so a flush whose connection dropped is run again on a
fresh one. A flush with no answer within `FLUSH_TIMEOUT` has an unknown outcome: the server may
commit it once it answers again. It is handled as a dropped connection is (running it again
changes nothing twice), with one more step: its connection is dropped, and before anything runs
again on a fresh one the old session is ended on the server (`pg_terminate_backend`) and waited
for until it is gone, so the old flush cannot commit after the writes that follow it (which
would set rows back to older values).

A flush whose server is gone, or refuses it as read-only (the primary was fenced, or is a
standby now: a failover; an outage too), drops every pooled connection, so the next flush opens
one to the writable server the URL names (drivers/pghosts.py), and the held writes commit there.

An outage of the database loses nothing written: a flush that still fails after its retries
answers its waiters `Unavailable` (their requests are answered 503: a call event's acceptance,
a renewal and a phase question are dropped with it, so a refused call event was not half
accepted) and keeps its other writes (attempts, message ids, receipts, updates, charges) in
memory, in order, ahead of anything queued later; they are retried every `HELD_RETRY` seconds
and commit as soon as the database answers, before any read of the store. They are what the
chains and receipts in flight wrote, so they are bounded by those: new call events are refused
meanwhile. A receipt held this way is also unacknowledged to the SMSC, which sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from infra.outage import Unavailable, backend_of, outages

from .pgbatch import Batch, Block, Write

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

    def __init__(self, pool: Callable[[], asyncpg.Pool], dropped: Callable[[], None] | None = None) -> None:
        self._pool = pool
        self._dropped = dropped  # told when the pool's connections are dropped (the listener's too)
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
        # (server address, pid) of a session whose flush timed out
        self._unanswered: tuple[Any, int] | None = None
        self.flushes = 0
        # Bumped whenever the pool's connections are dropped (the server died or refuses writes):
        # a statement begun on an older connection ends no outage when it answers.
        self.epoch = 0

    async def drop_connections(self) -> None:
        """Every pooled connection is closed instead of used again (those in use as they come
        back); the next ones are opened to the server that takes writes (drivers/pghosts.py)."""
        self.epoch += 1
        with contextlib.suppress(Exception):  # no pool (yet, or any more): nothing to drop
            await self._pool().expire_connections()
        if self._dropped is not None:
            self._dropped()

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
            epoch = self.epoch
            try:
                if self._conn is None:
                    self._conn = await self._pool().acquire(timeout=ACQUIRE_TIMEOUT)
                conn = self._conn
                async with asyncio.timeout(FLUSH_TIMEOUT):
                    if self._unanswered is not None:
                        await self._end_session(conn, *self._unanswered)
                    tell = await batch.run(conn)
                self.flushes += 1
                if epoch == self.epoch:  # else its connection was of a server since given up
                    outages.up("database")
                tell()
                error = None
                break
            except TimeoutError as exc:  # no answer: an outage now, not after RETRIES more waits
                error = Unavailable("database", exc)
                if conn is not None:  # a statement went out: its outcome is unknown
                    self._unanswered = self._unanswered or (_server(conn), conn.get_server_pid())
                    self._conn = None
                    conn.terminate()  # its session is ended on the server before anything runs again
                await self.drop_connections()  # the server's other sessions would hang as well
                break
            except asyncpg.ReadOnlySQLTransactionError as exc:  # not the primary (any more)
                error = Unavailable("database", exc)
                await self.drop_connections()
                await self._give_back()
                await asyncio.sleep(0.05 * (attempt + 1))
            except RETRYABLE as exc:
                error = exc
                if backend_of(exc) is None:  # a deadlock, not an outage (that is logged once)
                    log.warning("delivery group commit: %s; trying again", exc)
                else:  # the server is gone: no other session of it is used again
                    await self.drop_connections()
                await self._give_back()
                await asyncio.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # a bug in what was queued: the callers hear it
                log.exception("delivery group commit failed")
                error = exc
                break
        if error is not None and backend_of(error) is None:
            batch.fail(error)
        return error

    async def _end_session(self, conn: asyncpg.Connection, server: Any, pid: int) -> None:
        """End the server session of a flush that got no answer, and wait until it is gone: its
        transaction is then committed or rolled back for good, before anything else is run.
        (Without the right to end it, the session ends by itself once it finds its client gone.)
        On another server (a failover since) there is nothing to end: that pid is someone else,
        and the old server's session can no longer commit where the writes go now."""
        if server != _server(conn):
            self._unanswered = None
            return
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


def _server(conn: Any) -> Any:
    """The address a connection reached (asyncpg keeps it): which server of several it is on."""
    return getattr(conn, "_addr", None)
