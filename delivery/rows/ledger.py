"""The metering ledger's rows: one per charged attempt, what usage reports and invoices are
computed from (refunded rows excluded). What a row means: metering/ledger.py.

A charge is written at once on SQLite (in the attempt's transaction, with the package's units:
metering/sqlite.py) and queued for the group commit on PostgreSQL, where the Redis counters
took the units (metering/redis.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..drivers import Driver
from ..metering.ledger import GROUPS, LedgerEntry, day_of, usage_dicts
from ..metering.packages import Charge


# -- the group commit's records (PostgreSQL) -------------------------------------------------------
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
class Refund:
    """A charge refunded; `days`: the days its ledger row may be in (its partition on PostgreSQL:
    the day its units were taken, which its attempt's start names within a minute), () if not
    known."""

    key: str
    days: tuple[str, str] | tuple[()] = ()


def refund_days(at: float) -> tuple[str, str] | tuple[()]:
    """The days a charge taken just before `at` (its attempt's start) is recorded under: the
    charge's day is that of the moment its units were taken, a moment before the attempt began."""
    return (day_of(at - 60), day_of(at)) if at else ()


# PostgreSQL's ledger is partitioned by day (migration 0014): its key is (key, day). A charge
# written again on the same day rewrites its row; SQLite's key is the charge key alone.
REPLACE = (
    "ON CONFLICT {target} DO UPDATE SET enterprise = excluded.enterprise, package = excluded.package, "
    "line = excluded.line, channel = excluded.channel, units = excluded.units, overage = excluded.overage, "
    "cost = excluded.cost, day = excluded.day, at = excluded.at, refunded = 0"
)
CHARGE_ROW_SQL = (
    "INSERT INTO charges (key, enterprise, package, line, channel, units, overage, cost, day, at, refunded) "
    f"VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,0) {REPLACE.format(target='(key)')}"
)
CHARGES_SQL = (
    "INSERT INTO charges (key, enterprise, package, line, channel, units, overage, cost, day, at, refunded) "
    "SELECT *, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], "
    f"$7::int[], $8::float8[], $9::text[], $10::float8[]) {REPLACE.format(target='(key, day)')}"
)
REFUND_ROW_SQL = "UPDATE charges SET refunded = 1 WHERE key=$1"
PACKAGE_TOTALS_SQL = (
    "SELECT enterprise, package, sum(units), sum(overage) FROM charges "
    "WHERE refunded=0 AND package IS NOT NULL GROUP BY enterprise, package"
)
REFUNDS_SQL = "UPDATE charges SET refunded = 1 WHERE key = ANY($1::text[])"  # every kept day probed
# The same for charges of known days: two constants (equal but for a charge made just before
# midnight), so PostgreSQL touches those days' partitions alone, not the 400 kept.
REFUNDS_DAY_SQL = (
    "UPDATE charges SET refunded = 1 WHERE key = ANY($1::text[]) AND (day = $2::text OR day = $3::text)"
)


class LedgerRows:
    db: Driver

    async def record_charge(self, key: str, charge: Charge, e: LedgerEntry) -> None:
        """The ledger row of a charge; a repeated charge (found again under the same key after a
        crash) rewrites the same row."""
        if self.db.writes is None:
            await self.db.run(
                CHARGE_ROW_SQL, key, e.enterprise, charge.package, e.line, e.channel, charge.units,
                charge.overage, charge.cost, e.day, e.at,
            )  # fmt: skip
            return
        self.db.writes.queue(
            RecordCharge(
                key=key, enterprise=e.enterprise, package=charge.package, line=e.line, channel=e.channel,
                units=charge.units, overage=charge.overage, cost=charge.cost, day=e.day, at=e.at,
            ),
        )  # fmt: skip

    async def mark_refunded(self, key: str, at: float = 0.0) -> None:
        """`at`: when the charge was taken (its attempt's start), so PostgreSQL updates its day's
        partition alone; 0: every kept day's."""
        if self.db.writes is None:
            await self.db.run(REFUND_ROW_SQL, key)
        else:
            self.db.writes.queue(Refund(key, refund_days(at)))

    async def package_totals(self) -> list[tuple[str, str, int, int]]:
        """(enterprise, package, units, overage units) charged to each package, by the ledger:
        what the Redis counters' count is raised back to after Redis lost charges (a failover,
        a restart without its data). Reads the whole ledger: run then, not per request."""
        rows = await self.db.all(PACKAGE_TOTALS_SQL)
        return [(str(r[0]), str(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows]

    async def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
        cols = [c for c in by if c in GROUPS] or ["day"]
        sel = ", ".join(cols)  # only names from GROUPS reach the SQL text
        rows = await self.db.all(
            f"SELECT {sel}, count(*), sum(units), sum(overage), round(sum(cost)::numeric, 4)::float8 "
            f"FROM charges WHERE enterprise=$1 AND refunded=0 GROUP BY {sel} ORDER BY {sel}",
            enterprise,
        )
        return usage_dicts(cols, rows)
