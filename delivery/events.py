"""The event stream of deliveries: every fact of a delivery's card, once, and the rollups every
report reads.

A fact is recorded where it happens, in the same commit as the write that makes it a fact, so a
fact acknowledged to anyone is a fact kept even if the process is killed the next instant:
- sent: with the attempt's `submitted` write after the hand-over (chain.py);
- delivered: with the attempt's final state, where a receipt settles it (receipts.py `settle`:
  the SMSC's, Kannel's, a card SMS's render receipt) or a 5G hand-over does (chain.py); the
  receipt itself is stored before the deliver_sm or callback is answered, and a chain that resumes
  settles it, and records the fact, on whichever worker;
- displayed, opened: with the funnel's fact (funnel.py), in the same group commit on PostgreSQL
  (a link's open is itself written by the links' flusher after the redirect, rows/links.py: an
  open lost to a kill before that write loses its fact with it, and nobody was told otherwise);
- tapped: inside the tap's counting block (replies.py `count`), with the reply's dedupe key;
- replied, opted_out: a chatbot turn or an opt-out word has no write of its own to join (an
  opt-out's block comes after): the fact is written before them, and the caller's `durable()`
  (the deliver_sm_resp, the chatbot's webhook answer) waits for its commit.

`record` writes the fact to the inbox (rows/events.py): a statement in SQLite's open group-commit
transaction, a record of PostgreSQL's group commit. Each process runs a roller that, every
`FLUSH_EVERY` seconds (at once when `BATCH` were recorded here), claims the inbox a batch at a
time and in one transaction inserts the raw events (those already there skipped: a fact counts
once per (delivery, step, kind, key) however often it is heard, by whichever process) and adds
the new ones to the rollups per minute, hour and day and the latency histograms. On PostgreSQL
the claim skips rows another worker's roller holds, so every worker rolls at once and any may
die: what it claimed and did not commit is claimed again by the next. `settled()` returns once
everything recorded so far is in the rollups.

Why an inbox rather than writing the rollups where the fact happens: the rollups are a handful
of hot rows per card and minute that every fact of the card updates; updating them in the call
path would make every receipt and tap of a card wait on the same row locks. The inbox is an
append, and its row carries only what the caller already knows (no read on the call path): the
roll reads each fact's delivery (enterprise, card, version, experiment, variant) and the start of
its first attempt (latencies count from the first attempt, not from the delivery's creation) for
a whole batch in the claim's one statement. A repeat of a fact this process recorded lately is
not written at all (`RECENT_KEEP`); a block that rolls back forgets them.

Raw events are kept `retention_days` (a report never reads them: they are for investigating one
delivery and rebuilding a rollup), dropped a day at a time: each raw event's day is the China day
its delivery was created, so a delivery's facts share a day; on PostgreSQL that day is a partition
of its own, made ahead and dropped whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from infra.outage import Unavailable, log_failure

from .records import Delivery
from .retention import Retention
from .rows.events import EventRows, InboxEvent, Latency, Rollup

log = logging.getLogger("mingpian.delivery")

KINDS = ("sent", "delivered", "displayed", "opened", "tapped", "replied", "opted_out")
TIMED = ("displayed", "opened", "tapped", "replied")  # kinds whose time from the first send is kept
GRAINS = {"m": 60, "h": 3600, "d": 86400}  # rollup grains: bucket sizes in seconds
LATENCY_GRAINS = ("h", "d")  # histograms are kept per hour and day (a minute's is too thin to read)
CN_OFFSET = 8 * 3600  # buckets begin on China time (a day's bucket at 00:00 CST)
FLUSH_EVERY = 0.5  # s: recorded facts are in the rollups within this
BATCH = 5000  # facts one roll claims; recorded here since the last roll, they start one at once
SETTLE_WAIT = 30.0  # s settled() waits for facts another worker's roll holds
RECENT_KEEP = 65536  # keys recorded here lately: a repeat is dropped without a write
# Raw events kept this many days: a month of reports plus a few days to look into a complaint
# about a delivery or rebuild a rollup after a fix; longer only costs disk (reports never read them).
RETENTION_DAYS = 35
BINS_PER_DOUBLING = 4  # latency histogram: a bin is 2**(1/4) wide (about 19%)


def bucket_of(at: float, grain: str) -> float:
    """The start of the minute, hour or (China) day `at` falls in."""
    size = GRAINS[grain]
    return math.floor((at + CN_OFFSET) / size) * size - CN_OFFSET


def bin_of(seconds: float) -> int:
    """The latency histogram's bin of a duration (bin 0: under a second)."""
    return max(0, int(math.log2(max(seconds, 0.0) + 1.0) * BINS_PER_DOUBLING))


def bin_seconds(b: int) -> float:
    """The middle of a bin, in seconds (what a quantile read from the histogram answers)."""
    lo, hi = 2 ** (b / BINS_PER_DOUBLING) - 1, 2 ** ((b + 1) / BINS_PER_DOUBLING) - 1
    return round((lo + hi) / 2, 1)


def quantile(bins: dict[int, int], q: float) -> float | None:
    """The q-quantile of a histogram {bin: count} (None when empty)."""
    total = sum(bins.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for b in sorted(bins):
        seen += bins[b]
        if seen >= rank:
            return bin_seconds(b)
    return bin_seconds(max(bins))


def aggregate(new: Sequence[Sequence[Any]]) -> tuple[list[Rollup], list[Latency]]:
    """The rollup and histogram increments of new events (rows in rows/events.py's `NEW` order):
    counted per minute first (one key per event), then the minutes summed into hours and days."""
    minutes: Counter[tuple[Any, ...]] = Counter()
    timed: Counter[tuple[Any, ...]] = Counter()
    for ent, card, version, exp, variant, channel, step, kind, key, button, at, since in new:
        m = math.floor((at + CN_OFFSET) / 60) * 60 - CN_OFFSET
        # a keyed tap counts on its button's row; the delivery's step tapped at all (key "") on
        # the kind's own row, so "tapped" counts deliveries and "tapped:<text>" taps per button
        minutes[(ent, card, m, version, exp, variant, channel, step, kind, button if key else "")] += 1
        if key and button:
            continue
        if kind in TIMED:
            timed[(ent, card, m, version, exp, variant, channel, kind, bin_of(since))] += 1
    rollups: Counter[tuple[Any, ...]] = Counter()
    for (ent, card, m, version, exp, variant, channel, step, kind, button), n in minutes.items():
        for grain in GRAINS:
            b = m if grain == "m" else bucket_of(m, grain)
            rollups[(ent, card, grain, b, version, exp, variant, channel, step, kind, button)] += n
    latency: Counter[tuple[Any, ...]] = Counter()
    for (ent, card, m, version, exp, variant, channel, kind, b), n in timed.items():
        for grain in LATENCY_GRAINS:
            latency[(ent, card, grain, bucket_of(m, grain), version, exp, variant, channel, kind, b)] += n
    return (
        [(*k, n) for k, n in sorted(rollups.items())],  # type: ignore[misc]
        [(*k, n) for k, n in sorted(latency.items())],  # type: ignore[misc]
    )


def grain_for(since: float, until: float) -> str:
    """The coarsest grain whose buckets both bounds fall on."""
    for grain in ("d", "h"):
        if bucket_of(since, grain) == since and bucket_of(until, grain) == until:
            return grain
    return "m"


class Events:
    """The facts' inbox writes and this process's roller; the counts read from the rollups."""

    def __init__(self, db: Any, retention_days: int = RETENTION_DAYS) -> None:
        self.rows = EventRows(db)
        self.retention_days = retention_days
        self._recent: dict[str, None] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._since_roll = 0  # facts recorded here since the last roll
        self._down = False  # the last roll failed (logged once per outage)
        self.recorded = 0  # events new in the store, rolled by this process
        self.rolled = 0  # inbox rows this process claimed
        db.listen(self._heard)

    def _heard(self, payload: str) -> None:
        if payload == "rollback":  # a block rolled back: the facts it wrote are not in the inbox
            self._recent.clear()

    async def record(
        self,
        kind: str,
        delivery: Delivery | str,
        step: int,
        channel: str,
        at: float,
        key: str = "",
        button: str = "",
        vendor: str = "",
        day: str = "",
    ) -> None:
        """Write a fact to the inbox, in the caller's commit (inside its `tx()`, or the group
        commit its `durable()` waits for); counted once per (delivery, step, kind, key): `key`
        tells apart facts of one kind that each count (two different buttons tapped: their
        texts); `button`: the tapped button's text; `vendor`: the carrier, MaaP or card-SMS
        vendor that reported it, when known. A tap on a button also records its delivery's step
        as tapped (key ""): "tapped" counts deliveries. `day`: the delivery's (a `Delivery`
        carries its own), so the roller reads its delivery in one partition."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {KINDS}")
        if kind == "tapped" and key and button:
            await self.record(kind, delivery, step, channel, at, "", "", vendor, day)
        did = delivery if isinstance(delivery, str) else delivery.id
        day = day if isinstance(delivery, str) else delivery.day
        ident = f"{did}|{step}|{kind}|{key}"
        if ident in self._recent:
            return
        self._recent[ident] = None
        if len(self._recent) > RECENT_KEEP:
            del self._recent[next(iter(self._recent))]
        await self.rows.inbox(InboxEvent(did, step, kind, key, channel, vendor, button, at, day))
        self._since_roll += 1
        if self._task is None:
            self.start()
        if self._since_roll >= BATCH and self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Run this process's roller (every worker runs one: any may die)."""
        if self._task is None:
            self._wake = asyncio.Event()
            # a context of its own: the roller never inherits the store block of the task whose
            # first fact started it
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="delivery-events", context=contextvars.Context()
            )

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the facts stay in the inbox; rolled on the next round
                if not self._down:  # an outage is the outage's one line (infra/outage.py)
                    log_failure(log, exc, "delivery events: a roll failed; the facts stay in the inbox")
                self._down = True
                await asyncio.sleep(FLUSH_EVERY)

    async def flush(self) -> int:
        """Roll what the inbox holds now, a batch per transaction: returns how many of the
        events were new in the store."""
        async with self._lock:
            self._since_roll = 0
            new = 0
            while True:
                claimed, fresh = await self.rows.roll(BATCH, aggregate)
                self.rolled += claimed
                self.recorded += fresh
                new += fresh
                if claimed < BATCH:
                    break
            self._down = False
            return new

    async def settled(self) -> None:
        """Return once everything recorded so far (by this process; and by others, committed
        before) is in the rollups: committed, then rolled here or by another worker's roller.
        Raises Unavailable if the database is away."""
        try:
            await self.rows.db.durable()
            last = await self.rows.inbox_last()
            end = time.monotonic() + SETTLE_WAIT
            while True:
                await self.flush()
                if not last or not await self.rows.inbox_left(last):
                    return
                if time.monotonic() > end:  # another worker's roll holds them and does not end
                    raise Unavailable("database")
                await asyncio.sleep(0.02)  # another worker's roll holds some: it commits soon
        except Unavailable:
            raise
        except Exception as e:
            raise Unavailable("database") from e

    async def close(self) -> None:
        """Stop the roller after a last roll (what is left stays in the inbox for the others)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.warning("delivery events: the last roll failed; the facts stay in the inbox", exc_info=True)

    async def counts(
        self, enterprise: str, card: str, since: float, until: float, experiment: str = ""
    ) -> dict[str, dict[str, int]]:
        """Per variant ("" when none) → per kind → count of the facts in [since, until) (rounded
        to minutes), from the rollups; taps per button also as "tapped:<button text>"."""
        grain = grain_for(since, until)
        since, until = bucket_of(since, grain), bucket_of(until, grain)
        out: dict[str, dict[str, int]] = {}
        for variant, kind, button, n in await self.rows.counts(
            enterprise, card, grain, since, until, experiment
        ):
            per = out.setdefault(variant, {})
            name = f"{kind}:{button}" if button else kind
            per[name] = per.get(name, 0) + n
        return out

    async def maintain(self, now: float | None = None) -> None:
        """Drop the raw events past the retention, a day at a time; on PostgreSQL make the
        partitions of the days ahead: the upkeep of every growing table (retention.py). Safe to
        run on every worker at once."""
        days = {"delivery_events": self.retention_days}
        await Retention(self.rows.db, days).maintain(now, ("delivery_events",))
