"""Retention benchmark: dropping a day of the partitioned tables whatever its size, call intake
while a prune runs, and the hot path's cost as the tables grow. PostgreSQL with fsync,
synchronous_commit and full-page writes on (a throw-away initdb cluster), the store's own code
(delivery/store.py, delivery/retention.py) in this process.

One run:
1. `--small` rows (default 1 M) loaded into an older day of the six growing tables (calls,
   deliveries, attempts, message_ids, receipts, charges: one row of each per event, by
   generate_series on the server), then the hot path measured: `--concurrency` tasks for
   `--seconds`, each event a call accepted (its delivery and lease), its attempt, message id and
   submit, then a receipt looked up by message id (no day named: every kept partition probed),
   stored and applied, the delivery finished; events/s and CPU per event (PostgreSQL's process
   tree plus this process: everything shares the machine's cores).
2. Two more days loaded, of `--drop-sizes` events each (default 1 M and 5 M: six rows per event),
   and more days until `--load-seconds` of loading are spent: the hot path measured again on
   the large tables, against step 1 (target: within 10%).
3. Intake in an open loop at `--rate` events/s (a call event accepted: the time from its
   scheduled start until accept_call returns, durable): `--window` s alone, then `--window` s
   during which the two big days are dropped, table by table (each drop timed; target < 1 s).
   p50/p99 of both windows (target during the prune: p99 <= 50 ms); then the hot path once more,
   on the tables without those days (a third point to tell growth from the machine's noise).

Run: .venv/bin/python bench/prune_bench.py [--small 1000000] [--drop-sizes 1000000,5000000]
     [--load-seconds 420] [--seconds 10] [--concurrency 32] [--rate 200] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import asyncpg  # noqa: E402
from benchlib import tree_cpu  # noqa: E402

from delivery.metering.ledger import day_of  # noqa: E402
from delivery.records import Delivery  # noqa: E402
from delivery.retention import Retention  # noqa: E402
from delivery.store import PgDeliveryStore  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402

LOADED = ("calls", "deliveries", "attempts", "message_ids", "receipts", "charges")
CHUNK = 250_000  # events a loading statement writes per table
# One row per event g of a day, at a time of it (ids prefixed by the day: unique across days);
# {day}, {at}, {pre} and {base} are this script's own values, $1 and $2 the range of g.
G = "FROM generate_series($1::bigint, $2::bigint) g"
FILL = {
    "calls": "INSERT INTO {p} (call_id, phase, at, day) SELECT '{pre}' || g, 'ended', {at}, '{day}' " + G,
    "deliveries": "INSERT INTO {p} (id, call_id, phase, enterprise, line, recipient, card, template, kind, "
    "data, chain, step, state, reason, channel, event_at, created, updated, owner, lease_until, day) "
    "SELECT '{pre}' || g, '{pre}' || g, 'ended', 'e' || (g % 50), '+8610', "
    "'+86138' || lpad((g % 100000000)::text, 8, '0'), 'courier', 't', 'hangup', '{{}}', '[\"sms\"]', 0, "
    "'done', '', 'sms', {at}, {at}, {at}, '', 0, '{day}' " + G,
    "attempts": "INSERT INTO {p} (id, delivery, step, channel, state, segments, units, started, deadline, "
    "done, detail, day) SELECT {base} + g, '{pre}' || g, 0, 'sms', 'delivered', 1, 1, {at}, {at}, {at}, "
    "'', '{day}' " + G,
    "message_ids": "INSERT INTO {p} (message_id, attempt, stat, day) "
    "SELECT 'm{pre}' || g, {base} + g, NULL, '{day}' " + G,
    "receipts": "INSERT INTO {p} (message_id, stat, at, source, day) "
    "SELECT 'm{pre}' || g, 'DELIVRD', {at}, '', '{day}' " + G,
    "charges": "INSERT INTO {p} (key, enterprise, package, line, channel, units, overage, cost, day, at, "
    "refunded) SELECT '{pre}' || g || '#0', 'e' || (g % 50), NULL, '+8610', 'sms', 1, 0, 0.05, '{day}', "
    "{at}, 0 " + G,
}


async def load_day(conn: asyncpg.Connection, day: str, events: int, deadline: float | None) -> int:
    """`events` events' rows into `day`'s partitions (stopping at `deadline`): events loaded."""
    at = time.mktime(time.strptime(day, "%Y-%m-%d")) + 3600.0
    prefix, base = f"L{day.replace('-', '')}-", int(day.replace("-", "")) * 10**9
    done = 0
    while done < events and (deadline is None or time.monotonic() < deadline):
        hi = min(done + CHUNK, events)
        for t in LOADED:
            sql = FILL[t].format(p=f"{t}_{day.replace('-', '')}", day=day, at=at, pre=prefix, base=base)
            await conn.execute(sql, done, hi - 1)
        done = hi
    for t in LOADED:  # a past day: analysed once; its vacuum would not run in a measured phase
        part = f"{t}_{day.replace('-', '')}"
        await conn.execute(f"ALTER TABLE {part} SET (autovacuum_enabled = false)")
        await conn.execute(f"ANALYZE {part}")
    return done


async def rows_in(conn: asyncpg.Connection) -> int:
    total = 0
    for t in LOADED:
        total += int(await conn.fetchval(f"SELECT count(*) FROM {t}"))
    return total


def delivery(i: int, tag: str, now: float) -> Delivery:
    return Delivery(
        id=f"{tag}{i}", call_id=f"c{tag}{i}", phase="ended", enterprise="sf", line="+8610",
        recipient=f"+86139{i % 10**8:08d}", card="courier", template="t", kind="hangup", data={},
        chain=["sms"], step=0, state="active", reason="", channel="sms", event_at=now, created=now,
        updated=now,
    )  # fmt: skip


async def one_event(store: PgDeliveryStore, i: int, tag: str) -> None:
    """A call event's writes and reads on the hot path, its receipt included."""
    now = time.time()
    d = delivery(i, tag, now)
    assert await store.accept_call(d, "bench", now + 30)  # sets d.day: its rows' partition
    att = await store.add_attempt(d.id, 0, "sms", 1, 1, now + 30, d.day)
    await store.add_message_ids(att.id, [f"m{d.id}"], att.day)
    await store.update_attempt(att.id, day=att.day, state="submitted")
    await store.db.durable()
    found = await store.attempt_of_message(f"m{d.id}")  # by the message id alone: every day probed
    assert found == (att.id, att.day)
    await store.receipt(f"m{d.id}", "DELIVRD")
    await store.update_attempt(att.id, day=att.day, state="delivered", done=time.time())
    await store.update_delivery(d.id, day=d.day, state="done")
    await store.db.durable()


async def hot_path(
    store: PgDeliveryStore, pg: PostgresCluster, tag: str, seconds: float, conc: int
) -> dict[str, float]:
    """Closed loop: events/s and CPU ms per event (PostgreSQL + this process)."""
    count = 0
    end = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = 0
        while time.monotonic() < end:
            await one_event(store, w * 10**7 + i, tag)
            i += 1
            count += 1

    await asyncio.gather(*(worker(w) for w in range(2)))  # warm the plans
    count = 0
    end = time.monotonic() + seconds
    pg_cpu, me = tree_cpu(pg._postmaster()), time.process_time()
    t0 = time.monotonic()
    await asyncio.gather(*(worker(w + 10) for w in range(conc)))
    wall = time.monotonic() - t0
    cpu = tree_cpu(pg._postmaster()) - pg_cpu + time.process_time() - me
    return {"events_s": count / wall, "cpu_ms": 1000 * cpu / max(count, 1), "events": count}


async def open_loop(store: PgDeliveryStore, tag: str, rate: float, seconds: float) -> list[float]:
    """Call events accepted at `rate`/s: each one's ms from its scheduled start to durable."""
    lat: list[float] = []
    start = time.monotonic()
    n = int(rate * seconds)

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = time.time()
        await store.accept_call(delivery(i, tag, now), "bench", now + 30)
        lat.append(1000 * (time.monotonic() - due))

    await asyncio.gather(*(one(i) for i in range(n)))
    return lat


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000)[int(q * 1000) - 1] if len(xs) > 10 else max(xs)


async def main(a: argparse.Namespace) -> None:
    pg = PostgresCluster(pg_bin(), durable=True, settings={"shared_buffers": "256MB", "max_wal_size": "4GB"})
    pg.start()
    try:
        url = pg.create_database()
        store = PgDeliveryStore(url)
        await store.start()
        conn = await asyncpg.connect(url)
        print(f"PostgreSQL {await conn.fetchval('SHOW server_version')}: fsync "
              f"{await conn.fetchval('SHOW fsync')}, synchronous_commit "
              f"{await conn.fetchval('SHOW synchronous_commit')}; {os.cpu_count()} cores")  # fmt: skip
        now = time.time()
        today = date.fromisoformat(day_of(now))
        days = [(today - timedelta(days=k)).isoformat() for k in range(12)]
        r = Retention(store.db, {t: 30 for t in LOADED})
        for k in range(12):
            for t in LOADED:
                await r.make_ahead(t, now - k * 86400)
        parts = len(await r.rows.days("deliveries"))
        print(f"{parts} day partitions of each table (and a default one)")

        t0 = time.monotonic()
        small = await load_day(conn, days[3], a.small // len(LOADED), None)
        print(f"loaded {small * len(LOADED):,} rows in {time.monotonic() - t0:.0f} s")
        base = await hot_path(store, pg, "a", a.seconds, a.concurrency)
        print(f"hot path, {await rows_in(conn):,} rows: {base['events_s']:.0f} events/s, "
              f"{base['cpu_ms']:.2f} ms CPU per event")  # fmt: skip

        deadline = time.monotonic() + a.load_seconds
        t0 = time.monotonic()
        sizes = [int(x) for x in a.drop_sizes.split(",")]
        big = {}
        for day, n in zip((days[8], days[9]), sizes, strict=False):
            big[day] = await load_day(conn, day, n, deadline)
        k = 10
        while time.monotonic() < deadline and k < 12:
            await load_day(conn, days[k], 5_000_000, deadline)
            k += 1
        await conn.execute("CHECKPOINT")
        total = await rows_in(conn)
        print(f"loaded to {total:,} rows in {time.monotonic() - t0:.0f} s "
              f"(drop days: {', '.join(f'{d} {n:,} events' for d, n in big.items())})")  # fmt: skip
        large = await hot_path(store, pg, "b", a.seconds, a.concurrency)
        print(f"hot path, {total:,} rows: {large['events_s']:.0f} events/s, "
              f"{large['cpu_ms']:.2f} ms CPU per event")  # fmt: skip
        print(f"  large/small: events/s x{large['events_s'] / base['events_s']:.2f}, "
              f"CPU per event x{large['cpu_ms'] / base['cpu_ms']:.2f}")  # fmt: skip

        alone = await open_loop(store, "c", a.rate, a.window)
        drops: list[tuple[str, str, int | None, float, float, int]] = []

        async def prune() -> None:
            await asyncio.sleep(0.5)
            for day in big:
                for t in LOADED:
                    t1 = time.monotonic()
                    n = await r.rows.drop(t, day)
                    drops.append((t, day, n, time.monotonic() - t1, r.rows.held, r.rows.tries))

        during, _ = await asyncio.gather(open_loop(store, "d", a.rate, a.window), prune())
        print(f"intake at {a.rate:.0f} events/s, {a.window:.0f} s each:")
        print(f"  alone:        p50 {pct(alone, 0.5):.1f} ms, p99 {pct(alone, 0.99):.1f} ms, "
              f"max {max(alone):.1f} ms")  # fmt: skip
        print(f"  during prune: p50 {pct(during, 0.5):.1f} ms, p99 {pct(during, 0.99):.1f} ms, "
              f"max {max(during):.1f} ms")  # fmt: skip
        for t, day, n, s, held, tries in drops:
            print(f"  drop {t}_{day.replace('-', '')}: {'not dropped' if n is None else f'{n:,} rows'} "
                  f"in {1000 * s:.0f} ms, {tries} tries for the lock, the last from asking to commit "
                  f"{1000 * held:.0f} ms")  # fmt: skip
        after = await hot_path(store, pg, "e", a.seconds, a.concurrency)
        total = await rows_in(conn)
        print(f"hot path after the drops, {total:,} rows: {after['events_s']:.0f} events/s, "
              f"{after['cpu_ms']:.2f} ms CPU per event")  # fmt: skip
        await conn.close()
        await store.stop()
    finally:
        pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=1_000_000, help="rows before the first hot-path run")
    p.add_argument("--drop-sizes", default="1000000,5000000", help="events of the two days dropped")
    p.add_argument("--load-seconds", type=float, default=420, help="time spent loading the large tables")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--window", type=float, default=8)
    asyncio.run(main(p.parse_args()))
