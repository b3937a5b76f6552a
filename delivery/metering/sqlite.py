"""Counters in the delivery store's own SQLite file: the embedded default.

Consumption runs inside the store's transaction of the attempt row, so the row, its units and
its ledger row commit together; nothing can be charged without its attempt. One server process
owns the file, so a call event is deduplicated by its row in the store (in the event's own
transaction) and a receipt always reaches the process that submitted its message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .ledger import LedgerEntry
from .packages import Charge, Package, refused

if TYPE_CHECKING:  # the store imports metering's ledger: no import cycle at run time
    from ..store import SqliteDeliveryStore


class SqliteCounters:
    def __init__(self, store: SqliteDeliveryStore) -> None:
        self.store = store
        self._rows: set[str] = set()  # package_usage rows known to exist

    async def claim(self, key: str, ttl: float) -> str:
        """Always "new": the store's call-event row is the dedupe (one process per file)."""
        return "new"

    def confirm(self, key: str, ttl: float) -> None:
        pass

    async def cap(self, key: str, limit: int, window: float, member: str, now: float) -> bool:
        db = self.store.db
        async with db.transaction():
            await db.run("DELETE FROM caps WHERE key=$1 AND at <= $2", key, now - window)
            if await db.one("SELECT 1 FROM caps WHERE key=$1 AND member=$2", key, member):
                return True
            row = await db.one("SELECT count(*) FROM caps WHERE key=$1", key)
            if row is not None and row[0] >= limit:
                return False
            await db.run("INSERT INTO caps VALUES ($1,$2,$3)", key, now, member)
            return True

    async def consume(
        self, key: str, packages: list[Package], units: int, entry: LedgerEntry | None = None
    ) -> Charge:
        """Take `units` from the first package with room (else overage where allowed). The
        ledger row is what makes it idempotent per key: a key charged and not refunded is
        answered with that charge again."""
        db = self.store.db
        async with db.transaction():
            row = await db.one("SELECT package, units, overage, refunded FROM charges WHERE key=$1", key)
            if row and not row[3]:
                return Charge(True, row[0], row[1], row[2], repeated=True)
            charge = None
            for p in packages:
                if p.key not in self._rows:
                    await db.run(
                        "INSERT INTO package_usage (package) VALUES ($1) ON CONFLICT DO NOTHING", p.key
                    )
                    self._rows.add(p.key)
                took = await db.run(
                    "UPDATE package_usage SET used = used + $1 WHERE package=$2 AND used + $1 <= $3",
                    units, p.key, p.units,
                )  # fmt: skip
                if took:
                    charge = Charge(True, p.id, units, 0, units * p.unit_price)
                    break
            else:
                for p in packages:
                    if p.policy == "overage":
                        await db.run(
                            "UPDATE package_usage SET overage = overage + $1 WHERE package=$2", units, p.key
                        )
                        charge = Charge(True, p.id, 0, units, units * p.overage_price)
                        break
            if charge is not None:
                if entry is not None:  # the ledger row commits with the consumption, or neither does
                    await self.store.record_charge(key, charge, entry)
                return charge
        return refused(packages)

    async def take_before(self, key: str, packages: list[Package], units: int) -> Charge | None:
        return None  # taken in `take_within`, in the attempt row's transaction

    async def take_within(
        self, key: str, packages: list[Package], units: int, entry: LedgerEntry, before: Charge | None
    ) -> Charge:
        return await self.consume(key, packages, units, entry)  # never suspends: one transaction

    async def give_back_orphan(self, key: str) -> None:
        pass  # units commit with their attempt row: a crash cannot leave one without the other

    async def refund(self, key: str, at: float = 0.0) -> bool:  # one table: `at` not needed
        db = self.store.db
        async with db.transaction():
            row = await db.one(
                "SELECT enterprise, package, units, overage, refunded FROM charges WHERE key=$1", key
            )
            if not row or row[4]:
                return False
            if row[1] is not None:
                await db.run(
                    "UPDATE package_usage SET used = used - $1, overage = overage - $2 WHERE package=$3",
                    row[2], row[3], f"{row[0]}/{row[1]}",
                )  # fmt: skip
            await self.store.mark_refunded(key)
            return True

    async def usage(self, package: str) -> tuple[int, int]:
        row = await self.store.db.one("SELECT used, overage FROM package_usage WHERE package=$1", package)
        return (row[0], row[1]) if row else (0, 0)

    async def forward_receipt(self, message_id: str, stat: str) -> None:
        pass  # no other process shares this file's SMSC session

    async def forward_wake(self, delivery: str) -> None:
        pass  # every chain of this file runs in this process

    async def fanout(
        self, on_receipt: Callable[[str, str], Awaitable[None]], on_wake: Callable[[str], None]
    ) -> None:
        return None

    async def ping(self) -> None:
        pass  # the store's own file: its ping covers it

    async def close(self) -> None:
        pass
