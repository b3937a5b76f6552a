"""The delivery funnel: sent → delivered → displayed → link opened, per channel and day.

Sent and delivered are what the attempts already hold. The two later steps happen after the
chain is done, off its path, and are recorded here once per (delivery, step, fact) however often
they are heard: `displayed` (a 5G message's "displayed" report from the MaaP, a card SMS's
render receipt from its vendor, the H5 card page opened) and `opened` (a short link of the
delivery opened for the first time). Each new fact adds one to its day's counter in the same
write (rows/funnel.py), so the report reads daily counters, never the facts. The event stream's
fact (events.py) is written just before it, in the same commit (on PostgreSQL both are records of
the same group commit; on SQLite statements of the same open transaction): a repeat writes it
again, and the stream counts it once.

The report's sent and delivered of a day come from the attempts: counted once, then kept with the
day's counters, when the day is `SETTLED` (no attempt of it can change any more); the days after
that (today and yesterday) are read from the attempts of those days each time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from chatbot.events import StatusReport

from .events import Events
from .metering.ledger import CN, day_of
from .rows.funnel import FunnelFact
from .storage import FunnelStore

HOWS = ("rcs", "cardsms", "h5")  # what showed a card: MaaP report, render receipt, H5 page
STEPS = ("sent", "delivered", "displayed", "opened")
SETTLED = 2  # days: a day is counted for good once this many days began after it
RECENT_KEEP = 65536  # facts this process recorded lately: a repeat is answered without a write


def day_start(day: str) -> float:
    """The timestamp a China Standard Time day begins."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() - CN.total_seconds()


def days_between(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def runs(days: list[str]) -> list[list[str]]:
    """Sorted ISO days as stretches of consecutive days."""
    out: list[list[str]] = []
    for d in days:
        if out and date.fromisoformat(d) - date.fromisoformat(out[-1][-1]) == timedelta(days=1):
            out[-1].append(d)
        else:
            out.append([d])
    return out


class Funnel:
    def __init__(self, store: FunnelStore) -> None:
        self.store = store
        self._recent: dict[str, None] = {}  # keys of facts recorded here lately, oldest first
        self.events: Events | None = None  # the event stream: each fact with its write

    async def displayed(
        self, delivery: str, step: int, channel: str, enterprise: str, at: float, how: str, vendor: str = ""
    ) -> bool:
        """The card of a delivery's step was shown on the phone; `how`: "rcs" (the MaaP's
        displayed report), "cardsms" (the vendor's render receipt), "h5" (the card page opened);
        `vendor`: who said so, when known (a card SMS's phone maker). True when this was new (the
        first of its delivery and step, whatever `how`)."""
        if how not in HOWS:
            raise ValueError(f"unknown way a card was displayed {how!r}; expected one of {HOWS}")
        return await self._fact(
            FunnelFact(delivery, step, "displayed", enterprise, channel, day_of(at), how, at), vendor
        )

    async def opened(self, delivery: str, step: int, channel: str, enterprise: str, at: float) -> bool:
        """A short link of a delivery's step was opened for the first time: True when new."""
        return await self._fact(
            FunnelFact(delivery, step, "opened", enterprise, channel, day_of(at), "link", at)
        )

    async def on_status(self, reports: Iterable[StatusReport]) -> None:
        """The MaaP's status reports, as the chatbot runtime tells its status listeners: a
        "displayed" report on the message of one of our 5G attempts marks that step displayed,
        durable (with its event) before the runtime answers the MaaP."""
        told = False
        for r in reports:
            if r.status != "displayed":
                continue
            step = await self.store.step_of_message(r.message_id)
            if step is not None and step[2] == "rcs":
                delivery, n, channel, enterprise = step
                told = await self.displayed(delivery, n, channel, enterprise, time.time(), how="rcs") or told
        if told:  # committed before the MaaP hears 200 (on PostgreSQL it was, with the fact)
            await self.store.durable()

    async def _fact(self, fact: FunnelFact, vendor: str = "") -> bool:
        key = fact.key
        if key in self._recent:
            return False
        if self.events is not None:  # no await in between on PostgreSQL: the same flush takes both
            await self.events.record(
                fact.fact, fact.delivery, fact.step, fact.channel, fact.at, vendor=vendor
            )
        new = await self.store.funnel_fact(fact)
        self._recent[key] = None
        while len(self._recent) > RECENT_KEEP:
            del self._recent[next(iter(self._recent))]
        return new

    async def days(self, enterprise: str, first: str, last: str, now: float) -> list[dict[str, Any]]:
        """Each day and channel of `first`..`last` (ISO days, China time) with something in it:
        {day, channel, sent, delivered, displayed, opened}, in day and channel order."""
        today = day_of(now)
        last = min(last, today)
        if first > last:
            return []
        settled = (date.fromisoformat(today) - timedelta(days=SETTLED)).isoformat()
        if first <= settled:  # count the settled days not counted yet, once
            upto = min(last, settled)
            missing = sorted(
                set(days_between(first, upto)) - await self.store.funnel_sealed(enterprise, first, upto)
            )
            for run in runs(missing):  # each stretch of days not counted yet: one read of its attempts
                start, end = day_start(run[0]), day_start(run[-1]) + 86400
                counts = await self.store.funnel_sent(enterprise, start, end)
                await self.store.funnel_seal(enterprise, run, counts)
        rows = {(r["day"], r["channel"]): r for r in await self.store.funnel_days(enterprise, first, last)}
        if last > settled:  # the days still changing: from their attempts
            live = max(first, (date.fromisoformat(settled) + timedelta(days=1)).isoformat())
            for r in rows.values():
                if r["day"] >= live:
                    r["sent"] = r["delivered"] = 0
            for day, channel, sent, delivered in await self.store.funnel_sent(
                enterprise, day_start(live), day_start(last) + 86400
            ):
                r = rows.setdefault(
                    (day, channel),
                    {"day": day, "channel": channel, "sent": 0, "delivered": 0, "displayed": 0, "opened": 0},
                )
                r["sent"], r["delivered"] = sent, delivered
        return [rows[k] for k in sorted(rows) if any(rows[k][s] for s in STEPS)]


def rates(row: dict[str, Any]) -> dict[str, float | None]:
    """Each step's conversion from the step before it (None when the step before counted none)."""
    out: dict[str, float | None] = {}
    for before, step in pairwise(STEPS):
        out[f"{step}_rate"] = round(row[step] / row[before], 4) if row[before] else None
    return out


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The funnel report: each day and channel with its conversions, each channel's totals, and
    the total of all."""
    by_channel: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {"channel": "", **dict.fromkeys(STEPS, 0)}
    for r in rows:
        t = by_channel.setdefault(r["channel"], {"channel": r["channel"], **dict.fromkeys(STEPS, 0)})
        for s in STEPS:
            t[s] += r[s]
            total[s] += r[s]
    return {
        "days": [{**r, **rates(r)} for r in rows],
        "channels": [{**t, **rates(t)} for _, t in sorted(by_channel.items())],
        "total": {**total, **rates(total)},
    }
