"""The metering ledger: one row per charged attempt in the delivery store, what usage reports and
invoices are computed from (refunded rows excluded)."""

from __future__ import annotations

import csv
import io
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .packages import Charge

CN = timedelta(hours=8)

GROUPS = ("day", "line", "channel", "package")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Who and what a charge is for: the ledger row's columns besides the charge itself."""

    enterprise: str
    line: str
    channel: str
    day: str
    at: float


def day_of(t: float) -> str:
    """The China Standard Time calendar day of a timestamp: what reports group by."""
    return (datetime.fromtimestamp(t, UTC) + CN).strftime("%Y-%m-%d")


def write(db: sqlite3.Connection, key: str, charge: Charge, e: LedgerEntry) -> None:
    """The ledger row of a charge; a repeated charge (found again under the same key after a
    crash) rewrites the same row."""
    db.execute(
        "INSERT OR REPLACE INTO charges VALUES (?,?,?,?,?,?,?,?,?,?,0)",
        (
            key,
            e.enterprise,
            charge.package,
            e.line,
            e.channel,
            charge.units,
            charge.overage,
            charge.cost,
            e.day,
            e.at,
        ),
    )


def mark_refunded(db: sqlite3.Connection, key: str) -> None:
    db.execute("UPDATE charges SET refunded = 1 WHERE key=?", (key,))


def usage_rows(db: sqlite3.Connection, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
    cols = [c for c in by if c in GROUPS] or ["day"]
    sel = ", ".join(cols)  # only names from GROUPS reach the SQL text
    rows = db.execute(
        f"SELECT {sel}, count(*), sum(units), sum(overage), round(sum(cost), 4) FROM charges "
        f"WHERE enterprise=? AND refunded=0 GROUP BY {sel} ORDER BY {sel}",
        (enterprise,),
    )
    return usage_dicts(cols, rows)


def usage_dicts(cols: list[str], rows: Any) -> list[dict[str, Any]]:
    """Usage rows (the grouping columns, then messages, units, overage units, cost) as reported,
    from either store's query."""
    return [
        {
            **dict(zip(cols, list(r)[: len(cols)], strict=True)),
            "messages": r[len(cols)],
            "units": r[len(cols) + 1],
            "overage_units": r[len(cols) + 2],
            "cost": r[len(cols) + 3],
        }
        for r in rows
    ]


def to_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
