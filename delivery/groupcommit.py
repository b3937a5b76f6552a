"""One SQLite connection with group commit: the write path of the delivery store.

Why group commit: a call event, a submit and a receipt each want their writes durable before
they answer, and a COMMIT (an fsync with synchronous=FULL, a WAL append with NORMAL) per write
would cap a process at a few thousand writes a second. Statements run in one open transaction;
`durable()` waits for the next COMMIT, shared by every request ready in the same loop
iteration. `tx()` gives all-or-nothing blocks inside it (savepoints).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from infra.migrations import Migrations, enable_wal, migrate_sqlite


class GroupCommitDb:
    """The connection, its pragmas and schema, and the group-commit machinery. Subclasses keep
    read caches and drop them in `_forget` when a transaction rolls back."""

    def __init__(self, path: Path, schema: Migrations, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.schema = schema
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        # Group commit (see start_batching): one open transaction, committed for everyone waiting.
        self._batching = False
        self._waiters: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._savepoints = 0
        self._ticker: asyncio.Task[None] | None = None
        self.commits = 0

    def _forget(self) -> None:
        """Drop read caches that a rolled-back transaction may have filled."""

    def open(self, migrate: str = "auto") -> None:
        """Connect and bring the schema up to date: `migrate` is auto, check or off
        (infra/migrations.py); its MigrationError leaves the store closed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            enable_wal(db)
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            migrate_sqlite(db, self.schema, migrate)
        except BaseException:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._db is not None:
            self._flush()
            self._batching = False
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            raise RuntimeError("delivery store is not open")
        if self._batching and not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        return db

    # -- group commit ----------------------------------------------------------------------------
    def start_batching(self, tick: float = 0.05) -> None:
        """Group commit: statements run in one open transaction; `durable()` waits for the next
        COMMIT, which runs once the event loop has served every request already ready — so
        concurrent calls share one commit instead of paying four each. What nobody waits for
        is committed within `tick` seconds. A crash loses only writes nobody was told about:
        the 202, a submit and a deliver_sm_resp each wait for `durable()` first."""
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # the ticker checkpoints instead
        self._batching = True
        self._ticker = asyncio.get_running_loop().create_task(self._tick(tick))

    async def _tick(self, tick: float) -> None:
        """Commit what nobody waits for; checkpoint the WAL now and then from a worker thread
        with its own connection (PASSIVE: never blocks our writes), so a checkpoint never runs
        inside a COMMIT on the event loop, which would stall every call for tens of ms."""
        checkpoint_every = max(1, int(1.0 / tick))
        n = 0
        while True:
            await asyncio.sleep(tick)
            self._flush()
            n += 1
            if n % checkpoint_every == 0:
                await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        db = sqlite3.connect(self.path, timeout=1)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # busy: the next tick tries again
        finally:
            db.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        db = self._db
        waiters, self._waiters = self._waiters, []
        error: BaseException | None = None
        if db is not None and db.in_transaction and self._savepoints == 0:
            try:
                db.execute("COMMIT")
                self.commits += 1
            except sqlite3.Error as exc:
                error = exc
        elif self._savepoints:  # inside a savepoint (cannot happen between awaits): try again soon
            self._waiters = waiters
            self._schedule()
            return
        for w in waiters:
            if not w.done():
                if error is None:
                    w.set_result(None)
                else:
                    w.set_exception(error)

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def durable(self) -> None:
        """Return once everything written so far is committed."""
        if not self._batching or self._db is None or not self._db.in_transaction:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._schedule()
        await fut

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[None]:
        """All or nothing: the statements of the block commit together (inside the group
        transaction, as a savepoint). Nothing inside may wait on other I/O: the block runs
        without yielding to the event loop, so no other task's statements can join it."""
        db = self.db
        if self._batching:  # a savepoint inside the group transaction: all or nothing, too
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            db.execute(f"SAVEPOINT {name}")
            try:
                yield None
            except BaseException:
                db.execute(f"ROLLBACK TO {name}")
                db.execute(f"RELEASE {name}")
                self._savepoints -= 1
                self._forget()
                raise
            db.execute(f"RELEASE {name}")
            self._savepoints -= 1
            return
        if db.in_transaction:  # nested: the outer transaction commits
            yield None
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield None
        except BaseException:
            db.execute("ROLLBACK")
            self._forget()
            raise
        db.execute("COMMIT")
