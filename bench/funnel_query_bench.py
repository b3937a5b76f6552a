"""The card funnel report over a month of a big enterprise: 10,000,000 raw events of one
enterprise in 30 days, on SQLite and on PostgreSQL (fsync on), the report read the way the
funnel route reads it (delivery/eventfunnel.py `funnel`, the handler's code path below HTTP).

What is loaded, and how (the load is timed and printed, apart from the queries):
- The facts of about 3.3 million deliveries of enterprise `big` spread over the 30 China days
  before today: four cards (`hangup` under a two-variant experiment of versions 1 and 2, and three
  others), channels rcs / cardsms / sms with a fall-over of some rcs cards to SMS at step 1, each
  delivery sent, then delivered, displayed, opened, tapped (a button: two events), replied or
  opted out at realistic rates: exactly `--events` raw events (10,000,000). Beside them, five
  other enterprises with `--others` raw events in all (the same card names), so every query
  has to select its enterprise.
- Raw events go in as the store keeps them (`delivery_events`, every column): on SQLite by
  `executemany` in one transaction per day, on PostgreSQL by COPY into the day-partitioned table
  (the partitions made by the store's own `PartitionRows.make`), a day at a time, in the order of
  the primary key (days ascending, delivery ids ascending within a day).
- The rollups and latency histograms are what the service's own aggregation makes of those
  events: each day's events go through delivery/events.py `aggregate` (what the service adds to
  the rollups for the new events of each batch it writes), the increments summed per key across
  days exactly as its upserts' `n = n + excluded.n` would, then inserted once (SQLite
  `executemany`, PostgreSQL COPY; PostgreSQL's rollup tables then `ANALYZE`d, as autovacuum
  would after such a write; SQLite keeps no statistics, as the service runs it).

Then, for each shape (by variant / version / channel of the experiment's card, by card over every
card; day and hour buckets; 30 days), `--queries` reports (≥ 50) are timed on each store and
p50/p95 printed, against the target of 200 ms at p95, with the load average of the (shared)
machine while they ran and this process's CPU time per report (all of SQLite's work, which runs
in it; on PostgreSQL only the client's part). The baseline, measured in the same run on three
shapes: the reads as they were before the database grouped them (every rollup row of the range
summed in Python, every card through `$2 = ''`); it must answer the same report, and the ratio
of the medians is printed. Both stores must answer the same reports, and their sent counts equal
the deliveries generated.

The load (a day at a time: the aggregation and the SQLite insert in threads while PostgreSQL's
COPY runs in its own server process) is timed apart from the queries and printed per part.

Run: .venv/bin/python bench/funnel_query_bench.py [--events 10000000] [--others 1000000]
     [--queries 50] [--baseline-queries 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from delivery.eventfunnel import OTHER, STAGES, conversions, funnel, label  # noqa: E402
from delivery.events import Events, aggregate, quantile  # noqa: E402
from delivery.funnel import day_start  # noqa: E402
from delivery.metering.ledger import day_of  # noqa: E402
from delivery.rows.events import LATENCY_KEY, RAW_COLUMNS, ROLLUP_KEY  # noqa: E402
from delivery.rows.partitions import PartitionRows  # noqa: E402
from delivery.store import PgDeliveryStore, SqliteDeliveryStore  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402

DAYS = 30
BIG = "big"
# card → [(version, experiment, variant)], share of the enterprise's deliveries
CARDS = (
    ("hangup", ((1, "hangup~0001", "A"), (2, "hangup~0001", "B")), 0.4),
    ("ringing", ((3, "", ""),), 0.3),
    ("answered", ((1, "", ""),), 0.2),
    ("promo", ((2, "", ""),), 0.1),
)
BUTTONS = ("改约派送", "查看物流", "联系快递员")
TARGET_MS = 200.0
SHAPES = (
    ("variant", "hangup", "day"), ("variant", "hangup", "hour"),
    ("version", "hangup", "day"), ("version", "hangup", "hour"),
    ("channel", "hangup", "day"), ("channel", "hangup", "hour"),
    ("card", "", "day"), ("card", "", "hour"),
)  # fmt: skip


def pick_card(r: float) -> tuple[str, tuple[tuple[int, str, str], ...]]:
    """The card a share `r` in [0, 1) of the deliveries falls on, and its versions."""
    cum = 0.0
    for card, versions, share in CARDS:
        cum += share
        if r < cum:
            return card, versions
    return CARDS[-1][0], CARDS[-1][1]


def delivery_events(rng: random.Random, ent: str, did: str, t: float, day: str) -> list[tuple[Any, ...]]:
    """The raw events (RAW_COLUMNS order) of one delivery created at `t`."""
    card, versions = pick_card(rng.random())
    version, experiment, variant = versions[rng.randrange(len(versions))]
    u = rng.random()
    channel = "rcs" if u < 0.6 else "cardsms" if u < 0.85 else "sms"
    vendor = rng.choice(("huawei", "oppo", "xiaomi")) if channel == "cardsms" else ""
    out: list[tuple[Any, ...]] = []

    def ev(step: int, kind: str, ch: str, at: float, key: str = "", button: str = "") -> None:
        out.append((day, did, step, kind, key, ent, card, version, experiment, variant, ch,
                    vendor if ch == "cardsms" else "", button, at, at - t))  # fmt: skip

    ev(0, "sent", channel, t)
    step, ch, at = 0, channel, t
    if channel == "rcs" and rng.random() < 0.08:  # not delivered in time: falls over to SMS
        step, ch, at = 1, "sms", t + 30 + rng.random() * 30
        ev(1, "sent", "sms", at)
    if rng.random() < 0.95:
        at += 1 + rng.expovariate(1 / 4)
        ev(step, "delivered", ch, at)
        if rng.random() < 0.7:
            at += rng.expovariate(1 / 30)
            ev(step, "displayed", ch, at)
            if rng.random() < 0.3:
                ev(step, "opened", ch, at + rng.expovariate(1 / 60))
            tap = 0.14 if variant == "B" else 0.1
            if rng.random() < tap:
                b = BUTTONS[min(2, int(rng.expovariate(1.2)))]
                when = at + rng.expovariate(1 / 90)
                ev(step, "tapped", ch, when)
                ev(step, "tapped", ch, when, b, b)
            if rng.random() < 0.03:
                ev(step, "replied", ch, at + rng.expovariate(1 / 120))
            if rng.random() < 0.004:
                ev(step, "opted_out", ch, at + rng.expovariate(1 / 200))
    return out


def days_of_month(now: float) -> list[str]:
    today = day_of(now)
    first = day_start(today) - DAYS * 86400
    return [day_of(first + i * 86400 + 3600) for i in range(DAYS)]


def generate(
    days: list[str], events: int, others: int, seed: int = 7
) -> Iterator[tuple[str, list[Any], int]]:
    """Per day: (day, its raw events, how many deliveries of `big` were created that day)."""
    rng = random.Random(seed)
    per_day = [events // DAYS + (1 if i < events % DAYS else 0) for i in range(DAYS)]
    other_per_day = [others // DAYS + (1 if i < others % DAYS else 0) for i in range(DAYS)]
    seq = 0
    for day, want, other in zip(days, per_day, other_per_day, strict=True):
        start = day_start(day)
        rows: list[Any] = []
        made = 0
        while len(rows) < want:
            seq += 1
            t = start + rng.random() * 86400
            rows += delivery_events(rng, BIG, f"b{seq:09d}", t, day)
            made += 1
        del rows[want:]  # the last delivery's later facts cut: exactly `want` events this day
        ents = [f"o{i}" for i in range(1, 6)]
        extra: list[Any] = []
        while len(extra) < other:
            seq += 1
            extra += delivery_events(rng, rng.choice(ents), f"o{seq:09d}", start + rng.random() * 86400, day)
        del extra[other:]
        yield day, rows + extra, made


class Sums:
    """The rollup and histogram increments summed per key across batches: what the flushes'
    upserts (`n = n + excluded.n`) leave in the tables."""

    def __init__(self) -> None:
        self.rollups: dict[tuple[Any, ...], int] = defaultdict(int)
        self.latency: dict[tuple[Any, ...], int] = defaultdict(int)

    def add(self, raw: list[tuple[Any, ...]]) -> None:
        # the NEW shape (rows/events.py): enterprise, card, version, experiment, variant,
        # channel, step, kind, key, button, at, since
        new = [(r[5], r[6], r[7], r[8], r[9], r[10], r[2], r[3], r[4], r[12], r[13], r[14]) for r in raw]
        rollups, latency = aggregate(new)
        for *k, n in rollups:
            self.rollups[tuple(k)] += n
        for *k, n in latency:
            self.latency[tuple(k)] += n


RAW_INSERT = (
    f"INSERT INTO delivery_events ({', '.join(RAW_COLUMNS)}) VALUES ({', '.join('?' * len(RAW_COLUMNS))})"
)


async def load(
    sqlite_path: Path, pg_url: str, days: list[str], events: int, others: int
) -> tuple[dict[str, int], dict[str, float]]:
    """Both stores loaded; returns the deliveries of `big` per day and the seconds each part took."""
    took: dict[str, float] = defaultdict(float)
    lite = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    lite.execute("PRAGMA synchronous=NORMAL")
    pg = await asyncpg.connect(pg_url)
    store = PgDeliveryStore(pg_url)
    await store.start()
    for day in days:
        await PartitionRows(store.db).make("delivery_events", day)
    await store.stop()
    sums = Sums()
    made: dict[str, int] = {}

    async def timed(part: str, job: Any) -> None:
        t0 = time.perf_counter()
        await job
        took[part] += time.perf_counter() - t0

    def lite_write(*batches: tuple[str, list[Any]]) -> None:
        lite.execute("BEGIN")
        for sql, rows in batches:
            lite.executemany(sql, rows)
        lite.execute("COMMIT")

    try:
        # a day at a time: its aggregation, the SQLite insert (both in threads) and the
        # PostgreSQL COPY (its server's own process) run at once
        w0 = time.perf_counter()
        for day, raw, n in generate(days, events, others):
            made[day] = n
            await asyncio.gather(
                timed("aggregate", asyncio.to_thread(sums.add, raw)),
                timed("sqlite raw", asyncio.to_thread(lite_write, (RAW_INSERT, raw))),
                timed("postgresql raw", pg.copy_records_to_table(
                    "delivery_events", records=raw, columns=list(RAW_COLUMNS))),
            )  # fmt: skip
            print(f"  {day}: {len(raw):,} raw events ({n:,} deliveries of {BIG})", flush=True)
        took["raw events, wall"] = time.perf_counter() - w0
        rollups = sorted((*k, n) for k, n in sums.rollups.items())
        latency = sorted((*k, n) for k, n in sums.latency.items())
        rcols = [c.strip() for c in ROLLUP_KEY.split(",")] + ["n"]
        lcols = [c.strip() for c in LATENCY_KEY.split(",")] + ["n"]
        rsql = f"INSERT INTO event_rollups ({', '.join(rcols)}) VALUES ({', '.join('?' * len(rcols))})"
        lsql = f"INSERT INTO event_latency ({', '.join(lcols)}) VALUES ({', '.join('?' * len(lcols))})"

        async def pg_rollups() -> None:
            await pg.copy_records_to_table("event_rollups", records=rollups, columns=rcols)
            await pg.copy_records_to_table("event_latency", records=latency, columns=lcols)
            await pg.execute("ANALYZE event_rollups")  # what autovacuum does after such a load
            await pg.execute("ANALYZE event_latency")

        w0 = time.perf_counter()
        await asyncio.gather(
            timed("sqlite rollups", asyncio.to_thread(lite_write, (rsql, rollups), (lsql, latency))),
            timed("postgresql rollups", pg_rollups()),
        )
        took["rollups, wall"] = time.perf_counter() - w0
    finally:
        lite.close()
        await pg.close()
    return made, took


# The baseline: the funnel's reads before the database grouped them — every rollup row of the
# range and grain (one card, or every card through `$2 = ''`), summed per group in Python.
OLD_SERIES_SQL = (
    "SELECT bucket, card, version, variant, channel, step, kind, button, sum(n) FROM event_rollups "
    "WHERE enterprise=$1 AND ($2 = '' OR card=$2) AND grain=$3 AND bucket >= $4 AND bucket < $5 "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1"
)
OLD_LATENCY_SQL = (
    "SELECT bucket, card, version, variant, channel, kind, bin, sum(n) FROM event_latency "
    "WHERE enterprise=$1 AND ($2 = '' OR card=$2) AND grain=$3 AND bucket >= $4 AND bucket < $5 "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7"
)
BASELINE_SHAPES = (("variant", "hangup", "day"), ("variant", "hangup", "hour"), ("card", "", "hour"))


async def old_funnel(
    db: Any, card: str, since: float, until: float, by: str, bucket: str
) -> list[dict[str, Any]]:
    grain = {"day": "d", "hour": "h"}[bucket]
    groups: dict[str, dict[str, Any]] = {}

    def entry(c: str, version: Any, variant: str, channel: str) -> dict[str, Any]:
        g = {"variant": variant, "version": str(int(version)), "channel": channel, "card": c}.get(by, "")
        return groups.setdefault(g, {
            "group": g, "counts": dict.fromkeys((*STAGES, *OTHER), 0), "buttons": {},
            "after_fallover": 0, "hist": {"opened": {}, "tapped": {}}, "buckets": {},
        })  # fmt: skip

    for b, c, version, variant, channel, step, kind, button, n in await db.all(
        OLD_SERIES_SQL, BIG, card, grain, since, until
    ):
        e = entry(c, version, variant, channel)
        n = int(n)
        if button:
            e["buttons"][button] = e["buttons"].get(button, 0) + n
            continue
        if kind == "sent" and int(step) != 0:
            continue
        e["counts"][kind] += n
        row = e["buckets"].setdefault(b, dict.fromkeys((*STAGES, *OTHER), 0))
        row[kind] += n
        if kind == "tapped" and int(step) > 0:
            e["after_fallover"] += n
    for _b, c, version, variant, channel, kind, bin_, n in await db.all(
        OLD_LATENCY_SQL, BIG, card, grain, since, until
    ):
        if kind in ("opened", "tapped"):
            h = entry(c, version, variant, channel)["hist"][kind]
            h[int(bin_)] = h.get(int(bin_), 0) + int(n)
    out = []
    for g in sorted(groups):
        e = groups[g]
        taps = e["counts"]["tapped"]
        times = {k: {"median": quantile(e["hist"][k], 0.5), "p90": quantile(e["hist"][k], 0.9),
                     "n": sum(e["hist"][k].values())} for k in ("opened", "tapped")}  # fmt: skip
        out.append({
            "group": g, **e["counts"],
            "buttons": dict(sorted(e["buttons"].items(), key=lambda kv: -kv[1])),
            "conversions": conversions(e["counts"]),
            "tapped_after_fallover": round(e["after_fallover"] / taps, 4) if taps else None,
            "time_to_open": times["opened"], "time_to_tap": times["tapped"],
            "buckets": [{"bucket": label(b, grain), **e["buckets"][b]} for b in sorted(e["buckets"])],
        })  # fmt: skip
    return out


async def baseline(
    name: str,
    db: Any,
    since: float,
    until: float,
    answers: dict[Any, Any],
    p50s: dict[Any, float],
    queries: int,
) -> None:
    """The baseline's median on a few shapes, its answer checked equal, and the ratio."""
    for shape in BASELINE_SHAPES:
        by, card, bucket = shape
        times = []
        for _ in range(queries):
            t0 = time.perf_counter()
            got = await old_funnel(db, card, since, until, by, bucket)
            times.append(1000 * (time.perf_counter() - t0))
        assert got == answers[shape], f"the baseline answers another report: {shape}"
        p50 = statistics.median(times)
        print(f"  {name:10s} baseline by {by:7s} {card or '(all cards)':11s} {bucket:4s}  p50 {p50:7.1f} ms "
              f"({queries} queries): grouped by the database {p50 / p50s[shape]:.1f}x faster")  # fmt: skip


def counts_by_grain(rows: list[Any]) -> str:
    return ", ".join(f"{g} {int(n):,}" for g, n in sorted(rows))


async def measure(
    name: str, events: Events, since: float, until: float, queries: int
) -> tuple[dict[Any, Any], dict[Any, float]]:
    """p50/p95 of each shape; returns each shape's last answer and its p50."""
    answers: dict[Any, Any] = {}
    p50s: dict[Any, float] = {}
    for by, card, bucket in SHAPES:
        await funnel(events, BIG, card, since, until, by, bucket)  # a first read (statement caches)
        times, cpu = [], []
        for _ in range(queries):
            t0, c0 = time.perf_counter(), time.process_time()
            answers[(by, card, bucket)] = await funnel(events, BIG, card, since, until, by, bucket)
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        times.sort()
        cpu.sort()
        p50 = p50s[(by, card, bucket)] = statistics.median(times)
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        cpu95 = cpu[min(len(cpu) - 1, math.ceil(0.95 * len(cpu)) - 1)]
        verdict = "ok" if p95 <= TARGET_MS else "OVER"
        load = os.getloadavg()[0]
        groups = len(answers[(by, card, bucket)])
        buckets = sum(len(g["buckets"]) for g in answers[(by, card, bucket)])
        print(f"  {name:10s} by {by:7s} {card or '(all cards)':11s} {bucket:4s}  p50 {p50:7.1f} ms  "
              f"p95 {p95:7.1f} ms  {verdict}  (this process's CPU: p50 {statistics.median(cpu):.1f} ms, "
              f"p95 {cpu95:.1f} ms; {groups} groups, {buckets} bucket rows, {queries} queries, "
              f"load average {load:.1f} on {os.cpu_count()} cores)",
              flush=True)  # fmt: skip
    return answers, p50s


async def main(events_n: int, others: int, queries: int, baseline_queries: int, keep: Path | None) -> None:
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL not found (initdb)")
    work = Path(tempfile.mkdtemp(prefix="funnel-query-bench-", dir=keep))
    cluster = PostgresCluster(bindir, durable=True)  # fsync and synchronous_commit on, as deployed
    cluster.start()
    try:
        now = time.time()
        days = days_of_month(now)
        since, until = day_start(days[0]), day_start(days[-1]) + 86400
        lite_path = work / "delivery.db"
        lite_store = SqliteDeliveryStore(lite_path)
        await lite_store.start()  # the schema (migrations); then closed while the load writes
        await lite_store.stop()
        url = cluster.create_database()
        print(f"funnel query bench: {DAYS} days, {events_n:,} raw events of '{BIG}' and {others:,} of five "
              f"other enterprises; SQLite and PostgreSQL (fsync on)", flush=True)  # fmt: skip
        t0 = time.perf_counter()
        made, took = await load(lite_path, url, days, events_n, others)
        total = time.perf_counter() - t0
        print(f"load: {total:.0f} s in all — " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()))
        deliveries = sum(made.values())

        lite_store = SqliteDeliveryStore(lite_path)
        await lite_store.start()
        pg_store = PgDeliveryStore(url)
        await pg_store.start()
        results = {}
        for name, store in (("SQLite", lite_store), ("PostgreSQL", pg_store)):
            db = store.db
            raw = await db.one("SELECT count(*) FROM delivery_events WHERE enterprise = $1", BIG)
            everyone = await db.one("SELECT count(*) FROM delivery_events")
            roll = await db.all(
                "SELECT grain, count(*) FROM event_rollups WHERE enterprise = $1 GROUP BY 1", BIG
            )
            roll_all = await db.one("SELECT count(*) FROM event_rollups")
            lat = await db.one("SELECT count(*) FROM event_latency")
            print(
                f"{name}: raw events {int(raw[0]):,} of '{BIG}' ({int(everyone[0]):,} in all); rollup rows "
                f"of '{BIG}' {counts_by_grain(roll)} ({int(roll_all[0]):,} in all); latency rows "
                f"{int(lat[0]):,}"
            )
            assert int(raw[0]) == events_n
            results[name], p50s = await measure(name, Events(db), since, until, queries)
            await baseline(name, db, since, until, results[name], p50s, baseline_queries)
        assert results["SQLite"] == results["PostgreSQL"], "the stores answer different reports"
        sent = sum(g["sent"] for g in results["SQLite"][("card", "", "day")])
        assert sent == deliveries, (sent, deliveries)
        print(f"both stores answer the same reports; sent = {sent:,} deliveries generated")
        await lite_store.stop()
        await pg_store.stop()
    finally:
        cluster.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--others", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--baseline-queries", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="a folder to keep the SQLite file in")
    a = ap.parse_args()
    asyncio.run(main(a.events, a.others, max(50, a.queries), max(1, a.baseline_queries), a.keep))
