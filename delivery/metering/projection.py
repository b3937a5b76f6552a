"""When a package runs out at its recent pace: what an enterprise plans top-ups by.

The pace is the units charged to the package per day over the last `WINDOW` days (or since the
package started, if later), counted from the ledger's usage rows by day and package; the run-out
day is today plus what is left divided by that pace, in China time like every ledger day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from .ledger import day_of

WINDOW = 14  # days: long enough to smooth a weekend, short enough to follow a campaign


def project(
    package: Mapping[str, Any], usage: Iterable[Mapping[str, Any]], now: float, window: int = WINDOW
) -> dict[str, Any]:
    """`{"dailyUnits", "runOut", "expires"}` for one package (a balances row) given usage rows
    (`day`, `package`, `units`); `runOut` is an ISO day, or None when nothing is being spent."""
    today = date.fromisoformat(day_of(now))
    first = today - timedelta(days=window - 1)
    started = date.fromisoformat(day_of(float(package.get("valid_from", 0))))
    since = max(first, started)
    days = (today - since).days + 1
    pid = str(package["id"])
    spent = sum(
        int(r.get("units") or 0)
        for r in usage
        # the ledger names a package by its counter key, `enterprise/id`
        if str(r.get("package") or "").rsplit("/", 1)[-1] == pid
        and since.isoformat() <= str(r.get("day", "")) <= today.isoformat()
    )
    pace = spent / days if days > 0 else 0.0
    remaining = int(package.get("remaining") or 0)
    if remaining <= 0:
        run_out: str | None = today.isoformat()
    elif pace > 0:
        run_out = (today + timedelta(days=math.ceil(remaining / pace))).isoformat()
    else:
        run_out = None
    valid_to = package.get("valid_to")
    # valid_to is the first second not covered: the last day is the one its previous second is in
    expires = day_of(float(valid_to) - 1) if valid_to else None
    return {"dailyUnits": round(pace, 2), "runOut": run_out, "expires": expires}
