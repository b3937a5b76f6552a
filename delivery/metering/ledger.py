"""The metering ledger: one row per charged attempt in the delivery store, what usage reports and
invoices are computed from (refunded rows excluded). Its SQL: delivery/rows/ledger.py."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
