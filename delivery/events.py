"""The event stream of deliveries: every fact of a delivery's card, once, and the rollups every
report reads.

A fact is recorded where it happens (sent: an attempt handed to its gateway; delivered: its
receipt; displayed and opened: where the funnel's facts are; tapped: a numbered reply, a 5G
postback, an H5 button, with the button's text; replied: a person's chatbot turn; opted_out) and
counted once per (delivery, step, kind, key) however often it is heard. `record` only queues it:
the caller's path pays a tuple and a dict lookup, and the queue is written within `FLUSH_EVERY`
seconds (at once when `BATCH` are queued) in one transaction per flush, the rollups per minute,
hour and day and the latency histograms updated in the same transaction from the events that
were new (rows/events.py). What is queued and not yet flushed is lost if the process is killed;
`settled()` waits until everything queued so far is written, for a caller that must know.

Raw events are kept `retention_days` (a report never reads them: they are for investigating one
delivery and rebuilding a rollup), dropped a day at a time: each raw event's day is the China day
its delivery was created, so a delivery's facts share a day; on PostgreSQL that day is a partition
of its own, made ahead and dropped whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from infra.outage import Unavailable, log_failure

from .metering.ledger import day_of
from .records import Delivery
from .rows.events import EventRows, Latency, Rollup, partition_name

log = logging.getLogger("mingpian.delivery")

KINDS = ("sent", "delivered", "displayed", "opened", "tapped", "replied", "opted_out")
TIMED = ("displayed", "opened", "tapped", "replied")  # kinds whose time from the first send is kept
GRAINS = {"m": 60, "h": 3600, "d": 86400}  # rollup grains: bucket sizes in seconds
LATENCY_GRAINS = ("h", "d")  # histograms are kept per hour and day (a minute's is too thin to read)
CN_OFFSET = 8 * 3600  # buckets begin on China time (a day's bucket at 00:00 CST)
FLUSH_EVERY = 0.5  # s: queued events are written within this
BATCH = 2000  # queued events that start a flush at once
# Events held while the database is away, at most: past this the oldest are dropped (with a
# log line), so an outage cannot take the process's memory with it. A minute of a busy worker.
HELD_MAX = 500_000
RECENT_KEEP = 65536  # keys recorded here lately: a repeat is dropped without a write
# Raw events kept this many days: a month of reports plus a few days to look into a complaint
# about a delivery or rebuild a rollup after a fix; longer only costs disk (reports never read them).
RETENTION_DAYS = 35
PARTITIONS_AHEAD = 2  # days of partitions made ahead of today (PostgreSQL)
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
    """The queue of facts and its flushes; the counts read from the rollups."""

    def __init__(self, db: Any, retention_days: int = RETENTION_DAYS) -> None:
        self.rows = EventRows(db)
        self.retention_days = retention_days
        self._queue: list[tuple[Any, ...]] = []
        self._recent: dict[str, None] = {}
        self._days: dict[int, str] = {}  # China days by number since 1970 (the raw events' `day`)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._down = False  # the last flush failed (logged once per outage)
        self.recorded = 0  # events new in the store, written by this process

    async def record(
        self,
        kind: str,
        delivery: Delivery,
        step: int,
        channel: str,
        at: float,
        key: str = "",
        button: str = "",
        vendor: str = "",
    ) -> None:
        """Queue a fact, once per (delivery, step, kind, key): `key` tells apart facts of one
        kind that each count (two different buttons tapped: their texts); `button`: the tapped
        button's text; `vendor`: the carrier or vendor that reported it, when known. A tap on a
        button also records its delivery's step as tapped (key ""): "tapped" counts deliveries."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {KINDS}")
        if kind == "tapped" and key and button:
            await self.record(kind, delivery, step, channel, at, "", "", vendor)
        ident = f"{delivery.id}|{step}|{kind}|{key}"
        if ident in self._recent:
            return
        self._recent[ident] = None
        if len(self._recent) > RECENT_KEEP:
            del self._recent[next(iter(self._recent))]
        data, created = delivery.data, delivery.created
        n = int((created + CN_OFFSET) // 86400)
        day = self._days.get(n)
        if day is None:
            day = self._days[n] = day_of(created)
        since = at - created
        self._queue.append((
            day, delivery.id, step, kind, key, delivery.enterprise, delivery.card,
            int(data.get("version") or 0), str(data.get("experiment") or ""), str(data.get("variant") or ""),
            channel, vendor, button, at, since if since > 0.0 else 0.0,
        ))  # fmt: skip
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._queue) >= BATCH and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # kept in the queue; flushed again on the next round
                if not self._down:  # an outage is the outage's one line (infra/outage.py)
                    log_failure(log, exc, "delivery events: a flush failed; the events stay queued")
                self._down = True
                await asyncio.sleep(FLUSH_EVERY)

    async def flush(self) -> int:
        """Write what is queued: returns how many of the events were new in the store."""
        async with self._lock:
            batch, self._queue = self._queue, []
            if not batch:
                return 0
            try:
                new = await self.rows.add(batch, aggregate)
            except (Exception, asyncio.CancelledError):
                self._queue[:0] = batch  # ahead of what came meanwhile
                if len(self._queue) > HELD_MAX:
                    lost = len(self._queue) - HELD_MAX
                    del self._queue[:lost]
                    log.warning("delivery events: %d events dropped, the database away too long", lost)
                raise
            self._down = False
            self.recorded += new
            return new

    async def settled(self) -> None:
        """Return once everything queued so far is written (raises Unavailable if it cannot be)."""
        try:
            await self.flush()
        except Unavailable:
            raise
        except Exception as e:
            raise Unavailable("database") from e

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("delivery events: the last flush failed; %d events lost", len(self._queue))

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
        partitions of the days ahead. Safe to run on every worker at once."""
        now = time.time() if now is None else now
        today = date.fromisoformat(day_of(now))
        keep = (today - timedelta(days=self.retention_days - 1)).isoformat()
        if self.rows.db.name == "postgresql":
            have = await self.rows.partitions()
            for i in range(-1, PARTITIONS_AHEAD + 1):
                day = (today + timedelta(days=i)).isoformat()
                if partition_name(day) not in have:
                    await self.rows.make_partition(day)
            for name in sorted(have):
                digits = name.removeprefix("delivery_events_")
                if digits.isdigit() and len(digits) == 8:
                    day = f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
                    if day < keep:
                        await self.rows.drop_partition(day)
            await self.rows.prune_default(keep)
            return
        while (oldest := await self.rows.oldest_day()) is not None and oldest < keep:
            await self.rows.prune_day(oldest)
