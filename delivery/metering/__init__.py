"""Packages, pools and the counters that must be atomic: quota consumption, frequency caps and
call-event dedupe, with a SQLite and a Redis implementation behind one protocol.

Consumption happens when a message is handed to the gateway (so two concurrent calls can never
both take the last unit) and is refunded when that attempt fails or times out: what remains
charged is exactly what was delivered. Every charge is keyed by its delivery and step, so a
retried charge or a redelivered receipt never charges twice.

- `sqlite.py`: one transaction per consumption, inside the store's own (the attempt row, its
  units and its ledger row commit together); atomic across processes sharing the file too.
- `redis.py`: Lua scripts check and take units in one step on the server, so several server
  processes on one Redis never overspend a shared pool.

Where the two differ (when units are taken, who writes the ledger row, whether a receipt may
belong to another process) is a method of `Counters`; nothing outside asks which one it has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .ledger import LedgerEntry, day_of, to_csv
from .packages import Charge, Package, applicable, units_for

if TYPE_CHECKING:  # the store imports metering's ledger: no import cycle at run time
    from ..storage import MeterStore

__all__ = [
    "Charge",
    "Counters",
    "LedgerEntry",
    "Meter",
    "Package",
    "Reservation",
    "applicable",
    "day_of",
    "to_csv",
    "units_for",
]


class Counters(Protocol):
    async def claim(self, key: str, ttl: float) -> str:
        """Claim a call event: "new" (accept it, then `confirm`), "done" (a duplicate) or
        "pending" (another process has it and has not confirmed yet)."""
        ...

    def confirm(self, key: str, ttl: float) -> None: ...
    async def cap(self, key: str, limit: int, window: float, member: str, now: float) -> bool: ...
    async def consume(
        self, key: str, packages: list[Package], units: int, ledger: LedgerEntry | None = None
    ) -> Charge: ...

    async def take_before(self, key: str, packages: list[Package], units: int) -> Charge | None:
        """Units taken before the attempt row's transaction, where they live outside the store;
        None where they are taken inside it (`take_within`)."""
        ...

    async def take_within(
        self, key: str, packages: list[Package], units: int, entry: LedgerEntry, before: Charge | None
    ) -> Charge:
        """Inside the store transaction of the attempt row: the charge and its ledger row."""
        ...

    async def give_back_orphan(self, key: str) -> None:
        """A charge a crash may have left without its attempt row (units taken `before`)."""
        ...

    async def refund(self, key: str, at: float = 0.0) -> bool:
        """Give a charge back; `at`: when it was taken (its attempt's start), which names its
        ledger row's day (0: not known, every kept day looked in)."""
        ...

    async def usage(self, package: str) -> tuple[int, int]: ...

    async def forward_receipt(self, message_id: str, stat: str) -> None:
        """A receipt for a message no attempt of this process knows: tell the other processes."""
        ...

    async def forward_wake(self, delivery: str) -> None:
        """A delivery's state changed: wake its chain in whichever process it waits."""
        ...

    async def fanout(
        self, on_receipt: Callable[[str, str], Awaitable[None]], on_wake: Callable[[str], None]
    ) -> None:
        """Feed receipts and wakes other processes forwarded to the handlers until cancelled."""
        ...

    async def ping(self) -> None:
        """Raise if the counters' server does not answer (readiness)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """An attempt's charge between `Meter.reserve` (before its transaction) and `Meter.settle`
    (inside it)."""

    key: str
    packages: list[Package]
    units: int
    entry: LedgerEntry
    before: Charge | None
    metered: bool


class Meter:
    """Charges and refunds per attempt, with the ledger (for reports) in the delivery store."""

    def __init__(self, store: MeterStore, counters: Counters) -> None:
        self.store = store
        self.counters = counters

    async def reserve(
        self, key: str, enterprise: str, line: str, channel: str, segments: int, now: float
    ) -> Reservation:
        packages, metered = await applicable(self.store, enterprise, line, now)
        doc = await self.store.get("package", enterprise, packages[0].id) if packages else None
        units = units_for(doc, channel, segments)
        entry = LedgerEntry(enterprise, line, channel, day_of(now), now)
        before = await self.counters.take_before(key, packages, units) if metered else None
        return Reservation(key, packages, units, entry, before, metered)

    async def settle(self, r: Reservation) -> Charge:
        """Call inside the store transaction that writes the attempt row."""
        if not r.metered:  # an enterprise without packages is not metered (e.g. a trial)
            return Charge(True, reason="unmetered")
        return await self.counters.take_within(r.key, r.packages, r.units, r.entry, r.before)

    async def refund(self, key: str, at: float = 0.0) -> bool:
        """`at`: when the charge was taken (its attempt's start; 0: not known)."""
        return await self.counters.refund(key, at)

    async def balances(self, enterprise: str) -> list[dict[str, Any]]:
        out = []
        for d in await self.store.list("package", enterprise):
            used, over = await self.counters.usage(f"{enterprise}/{d['id']}")
            out.append(
                {
                    "id": d["id"],
                    "kind": d.get("kind", "pool"),
                    "units": d["units"],
                    "used": used,
                    "remaining": max(0, d["units"] - used),
                    "overage": over,
                    "policy": d.get("policy", "stop"),
                    "valid_from": d["valid_from"],
                    "valid_to": d["valid_to"],
                }
            )
        return out

    async def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
        return await self.store.usage(enterprise, by)
