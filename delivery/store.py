"""The delivery store: every aggregate's rows (delivery/rows/) over one driver (delivery/drivers/).

One class for both databases: the SQL of each aggregate is written once in its module, and the
driver decides where it runs. `SqliteDeliveryStore` (one file, the embedded default) and
`PgDeliveryStore` (the system of record a fleet shares) only pick the driver. What consumers may
call is named by the role protocols in storage.py; open_store.py picks a store from the settings.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .drivers import Driver
from .drivers.sqlite import SqliteDriver
from .rows.attempts import AttemptRows
from .rows.calls import CallRows
from .rows.console import ConsoleRows
from .rows.funnel import FunnelRows
from .rows.ledger import LedgerRows
from .rows.links import LinkRows
from .rows.media import MediaRows
from .rows.reach import ReachRows
from .rows.resources import ResourceRows

if TYPE_CHECKING:
    from .drivers.postgres import PgDriver

TABLES = (
    "objects", "audit", "api_keys", "calls", "deliveries", "attempts", "message_ids", "receipts",
    "optouts", "taps", "impressions", "replies_seen", "charges", "media", "chatbot_owners",
    "console_sessions", "active_chains", "short_links", "link_opens", "funnel_facts",
    "funnel_days", "funnel_sealed",
)  # fmt: skip


class Store(
    ResourceRows, MediaRows, CallRows, AttemptRows, ReachRows, LedgerRows, ConsoleRows, LinkRows, FunnelRows
):
    def __init__(self, driver: Driver) -> None:
        self.db = driver
        self.shared = driver.shared  # several processes use it: leases decide which runs a chain
        self.generation = 0  # bumped whenever the read caches are dropped: derived caches compare it
        self._docs: dict[tuple[Any, ...], Any] = {}
        self._keys: dict[str, tuple[str, str | None]] = {}
        self._optouts: set[tuple[str, str]] = set()
        self._phases_seen: dict[str, tuple[set[str], float]] = {}
        self._ids: list[int] = []
        self._ids_coming: asyncio.Future[None] | None = None
        driver.listen(self._heard)

    def _heard(self, payload: str) -> None:
        """A change the read caches hold, committed by this process or another (or rolled back)."""
        if not self._heard_optout(payload):
            self._forget()

    async def start(self) -> None:
        await self.db.start()
        try:
            await self._load_optouts()
        except BaseException:
            await self.db.stop()
            raise

    async def stop(self) -> None:
        await self.db.stop()

    def tx(self) -> AbstractAsyncContextManager[None]:
        """All or nothing (drivers/: what may run inside)."""
        return self.db.transaction()

    async def durable(self) -> None:
        await self.db.durable()

    async def ping(self) -> None:
        await self.db.ping()

    async def snapshot(self) -> list[str]:
        return await self.db.snapshot()


class SqliteDeliveryStore(Store):
    """The store in one SQLite file (WAL, group commit), owned by one server process."""

    db: SqliteDriver

    def __init__(self, path: Path, synchronous: str = "NORMAL", migrate: str = "auto") -> None:
        super().__init__(SqliteDriver(path, synchronous, migrate))

    def open(self, migrate: str = "auto") -> None:
        """Open the file without starting the group commit (tools and tests that read it)."""
        self.db.open(migrate)
        rows = self.db.db.execute("SELECT enterprise, number FROM optouts")
        self._optouts = {(r[0], r[1]) for r in rows}

    def close(self) -> None:
        self.db.close()


class PgDeliveryStore(Store):
    """The store in PostgreSQL, shared by every worker of a fleet."""

    db: PgDriver

    def __init__(self, url: str, *, migrate: str = "auto", min_size: int = 2, max_size: int = 10) -> None:
        from .drivers.postgres import PgDriver  # deferred: asyncpg only where PostgreSQL is used

        super().__init__(PgDriver(url, TABLES, migrate=migrate, min_size=min_size, max_size=max_size))
