"""Where the delivery store's statements run: a small driver protocol, and its two drivers.

The store's SQL is written once, per aggregate, in `delivery/rows/`, in PostgreSQL's spelling
(`$1` parameters, `::type` casts, `= ANY($1::text[])` for a list, `ILIKE`). The SQLite driver
reads that spelling (sqlite.py says how); where the two databases really differ, both versions
stand side by side in the aggregate's module and the driver's `name` picks one.

- `sqlite.py`: one file, one connection, group commit (groupcommit.py): the embedded default.
- `postgres.py`: a pool shared by every worker of a fleet; the hot-path writes queued for the
  group commit (`writes`, pgbatch.py and pgflush.py); NOTIFY to reach the other workers' caches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = Sequence[Any]  # a result row: indexable by column position on both drivers
# What listeners hear when the driver's listener connected again after losing its connection:
# notifications may have been missed meanwhile (PostgreSQL's restart or failover).
RELISTEN = "relisten"


class GroupWrites(Protocol):
    """The PostgreSQL driver's queue of hot-path writes (typed records, pgbatch.py): they commit
    together with those of every other call event in flight."""

    def queue(self, write: Any, fut: asyncio.Future[Any] | None = None) -> None:
        """Queue a write; `fut` hears its answer once committed (a new call event? a lease held?)."""
        ...

    async def join(self) -> None:
        """Inside a block: run its queued writes on the block's connection now (for an answer)."""
        ...

    async def fetch_ids(self, sql: str, n: int) -> list[int]:
        """`n` ids from a sequence (`sql` takes the count), outside any block or queue."""
        ...


class Driver(Protocol):
    name: str  # "sqlite" | "postgresql": where both versions of a statement stand, which one runs
    shared: bool  # several processes use the database: leases decide which runs a chain
    writes: GroupWrites | None  # the group commit's queue (PostgreSQL); None: statements run at once

    async def start(self) -> None:
        """Connect and bring the schema up to date (the migrate mode given at construction)."""
        ...

    async def stop(self) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """All or nothing; nested, a savepoint. Nothing inside may wait on other I/O."""
        ...

    def in_block(self) -> bool:
        """Whether the caller is inside a `transaction()` block."""
        ...

    async def durable(self) -> None:
        """Return once everything written so far would survive a crash."""
        ...

    async def ping(self) -> None: ...
    async def snapshot(self) -> list[str]:
        """Every row of every table as text, sorted (tests compare two)."""
        ...

    async def one(self, sql: str, *args: Any) -> Row | None: ...
    async def all(self, sql: str, *args: Any) -> list[Row]: ...
    async def committed(self, sql: str, *args: Any) -> list[Row]:
        """A read of rows that are only written with awaited commits: it need not wait for the
        writes still queued for the group commit."""
        ...

    async def run(self, sql: str, *args: Any) -> int:
        """Run a statement; how many rows it changed."""
        ...

    async def insert(self, sql: str, *args: Any) -> int:
        """Run an INSERT of one row; the integer key it was given (SQLite: the rowid; PostgreSQL:
        the statement's `RETURNING` names it)."""
        ...

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    async def lock(self, key: str) -> None:
        """Inside a transaction: hold `key` until it ends, against every process of the fleet."""
        ...

    async def notify(self, payload: str) -> None:
        """Tell every process's listeners (this one's now, the others' at commit)."""
        ...

    def listen(self, hear: Callable[[str], None]) -> None:
        """`hear(payload)` for every notification, "rollback" when a block rolls back (a read
        cache may hold what was rolled back), and RELISTEN (after "rollback") when notifications
        may have been missed."""
        ...
