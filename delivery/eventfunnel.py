"""The funnel of a card from the event stream's rollups: sent → delivered → displayed → opened →
tapped, grouped by variant, version, channel or card, per day or hour, with a 95% Wilson interval
for each conversion and the time to open and to tap (median, p90) from the latency histograms.

Reads rollups only (delivery/events.py), grouped by the database (rows/eventreports.py): a month
of one enterprise comes back as a few thousand rows whatever the number of raw events. "Sent"
counts each delivery's first attempt (step 0), so a fall-over to SMS does not count the card
twice; the later stages count every step, and the share of taps that came after a fall-over
(step > 0) is given beside them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from .events import CN_OFFSET, Events, bucket_of, grain_for, quantile
from .rows.eventreports import EventReports

STAGES = ("sent", "delivered", "displayed", "opened", "tapped")
OTHER = ("replied", "opted_out")
BYS = ("variant", "version", "channel", "card")
BUCKETS = {"day": "d", "hour": "h"}
Z95 = 1.959963984540054  # the normal quantile of 97.5%: a two-sided 95% interval


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n (None when n is 0): unlike the normal
    approximation it stays within [0, 1] and is honest for small counts and rates near 0 or 1."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def conversions(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Each pair of stages (earlier → later): rate with its 95% interval (None without a base)."""
    out = []
    for a, b in combinations(STAGES, 2):
        n, k = counts.get(a, 0), counts.get(b, 0)
        ci = wilson(min(k, n), n)
        out.append({
            "from": a, "to": b, "rate": round(k / n, 4) if n else None,
            "low": round(ci[0], 4) if ci else None, "high": round(ci[1], 4) if ci else None,
        })  # fmt: skip
    return out


def label(bucket: float, grain: str) -> str:
    t = datetime.fromtimestamp(bucket + CN_OFFSET, UTC)
    return t.strftime("%Y-%m-%d") if grain == "d" else t.strftime("%Y-%m-%dT%H:00")


async def funnel(
    events: Events, enterprise: str, card: str, since: float, until: float, by: str, bucket: str
) -> list[dict[str, Any]]:
    """The funnel of `card` ("" every card) in [since, until) (bucket bounds), one entry per
    group of `by` ("" one group), each with its buckets. The totals and times are read at the day
    grain when the range is whole days (they are the same sums, from fewer rows)."""
    grain = BUCKETS[bucket]
    whole = "d" if grain_for(since, until) == "d" else grain
    reports = EventReports(events.rows.db)
    cards = [card] if card else await reports.cards(enterprise, bucket_of(since, "d"), until)
    groups: dict[str, dict[str, Any]] = {}

    def entry(g: str) -> dict[str, Any]:
        return groups.setdefault(g, {
            "group": g, "counts": dict.fromkeys((*STAGES, *OTHER), 0), "buttons": {},
            "after_fallover": 0, "hist": {"opened": {}, "tapped": {}}, "buckets": {},
        })  # fmt: skip

    if not cards:
        return []
    for g, kind, after, button, n in await reports.totals(enterprise, cards, by, whole, since, until):
        e = entry(str(g))
        n = int(n)
        if button:
            e["buttons"][button] = e["buttons"].get(button, 0) + n
            continue
        if kind == "sent" and after:
            continue  # a fall-over's attempt: the delivery was counted sent at its first
        e["counts"][kind] = e["counts"].get(kind, 0) + n
        if kind == "tapped" and after:
            e["after_fallover"] += n
    kinds = (*STAGES, *OTHER)
    labels: dict[float, str] = {}
    for b, g, *counts in await reports.series(enterprise, cards, by, grain, since, until, kinds):
        name = labels.get(b) or labels.setdefault(b, label(b, grain))
        row = entry(str(g))["buckets"].setdefault(name, dict.fromkeys(kinds, 0))
        for k, n in zip(kinds, counts, strict=True):
            row[k] += int(n)
    for g, kind, bin_, n in await reports.latency(enterprise, cards, by, whole, since, until):
        h = entry(str(g))["hist"][kind]
        h[int(bin_)] = h.get(int(bin_), 0) + int(n)
    out = []
    for g in sorted(groups):
        e = groups[g]
        taps = e["counts"]["tapped"]
        out.append({
            "group": g,
            **e["counts"],
            "buttons": dict(sorted(e["buttons"].items(), key=lambda kv: -kv[1])),
            "conversions": conversions(e["counts"]),
            "tapped_after_fallover": round(e["after_fallover"] / taps, 4) if taps else None,
            "time_to_open": _times(e["hist"]["opened"]),
            "time_to_tap": _times(e["hist"]["tapped"]),
            "buckets": [{"bucket": b, **e["buckets"][b]} for b in sorted(e["buckets"])],
        })  # fmt: skip
    return out


def _times(hist: dict[int, int]) -> dict[str, Any]:
    """Seconds from the first send: median and p90 (to the histogram's ~19% bins), and how many."""
    return {"median": quantile(hist, 0.5), "p90": quantile(hist, 0.9), "n": sum(hist.values())}
