"""Event ingest into the rollups, one worker process, PostgreSQL with fsync on (delivery/events.py).

Callers record the facts of deliveries as the service does (sent, delivered, displayed, opened,
tapped with a button; two variants of one card) and the queue is flushed in batches, each one
transaction: raw events inserted once, the minute/hour/day rollups and latency histograms
updated from the new ones. Printed: events per second of wall time and CPU microseconds per
event (recording and flushing), then the same facts again from a second Events that has not
seen them (another worker hearing repeats: nothing may count twice), the baseline of one
transaction per event on the same pool (insert, then its rollups) with the ratio, and the check
that the rollups equal the events. Redis holds the delivery counters, which this path does not
touch; it is not started.

Run: .venv/bin/python bench/events_bench.py [--deliveries 20000] [--baseline 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from delivery.events import Events, aggregate, bucket_of  # noqa: E402
from delivery.records import Delivery  # noqa: E402
from delivery.rows.events import RAW_ARRAYS_SQL, RAW_COLUMNS, ROLLUP_ROW_SQL, columns  # noqa: E402
from delivery.store import PgDeliveryStore  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402


def deliveries(n: int, now: float, prefix: str) -> list[Delivery]:
    return [
        Delivery(
            id=f"{prefix}{i}",
            call_id=f"c{i}",
            phase="ended",
            enterprise="sf",
            line="+8610",
            recipient=f"r{i}",
            card="courier",
            template="t",
            kind="hangup",
            data={"version": 3, "experiment": "x1", "variant": "AB"[i % 2]},
            chain=["rcs", "sms"],
            step=0,
            state="delivered",
            reason="",
            channel="rcs",
            event_at=now,
            created=now,
            updated=now,
        )
        for i in range(n)
    ]


def facts(ds: list[Delivery], now: float) -> list[tuple[str, Delivery, float, str]]:
    """Sent and delivered for each; displayed for 80%, opened 40%, tapped 15% (a button)."""
    out = []
    for i, d in enumerate(ds):
        out += [("sent", d, now, ""), ("delivered", d, now + 3, "")]
        if i % 5 < 4:
            out.append(("displayed", d, now + 20 + i % 50, ""))
        if i % 5 < 2:
            out.append(("opened", d, now + 40 + i % 300, ""))
        if i % 20 < 3:
            out.append(("tapped", d, now + 90 + i % 600, "改约" if i % 2 else "查件"))
    return out


async def ingest(
    events: Events, todo: list[tuple[str, Delivery, float, str]], callers: int
) -> tuple[float, float]:
    """Wall seconds and CPU seconds to record every fact and have it written."""
    chunks = [todo[i::callers] for i in range(callers)]
    w0, c0 = time.perf_counter(), time.process_time()

    async def caller(mine: list[tuple[str, Delivery, float, str]]) -> None:
        for i, (kind, d, at, button) in enumerate(mine):
            await events.record(kind, d, 0, "rcs", at, key=button, button=button)
            if i % 64 == 63:
                await asyncio.sleep(0)  # let the other callers and the flushes run, as requests do

    await asyncio.gather(*(caller(c) for c in chunks))
    await events.settled()
    return time.perf_counter() - w0, time.process_time() - c0


async def main(n: int, base_n: int, callers: int) -> None:
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL not found (initdb)")
    cluster = PostgresCluster(bindir, durable=True)  # fsync and synchronous_commit on, as deployed
    cluster.start()
    try:
        store = PgDeliveryStore(cluster.create_database())
        await store.start()
        now = time.time()
        events = Events(store.db)
        await events.maintain(now)  # today's partition and the next days'
        todo = facts(deliveries(n, now, "d"), now)
        taps = sum(1 for f in todo if f[0] == "tapped")
        m = len(todo) + taps  # a tap on a button also records its delivery's step as tapped
        print(f"events bench: {n} deliveries, {m} events, {callers} callers, PostgreSQL fsync on")
        wall, cpu = await ingest(events, todo, callers)
        print(f"  new events       {m / wall:9.0f} events/s  {1e6 * cpu / m:6.1f} µs CPU per event  "
              f"({m / cpu:.0f} events per CPU second)")  # fmt: skip
        assert events.recorded == m, (events.recorded, m)
        other = Events(store.db)  # a worker that has not seen them
        wall2, cpu2 = await ingest(other, todo, callers)
        print(f"  repeats          {m / wall2:9.0f} events/s  {1e6 * cpu2 / m:6.1f} µs CPU per event  "
              f"new: {other.recorded}")  # fmt: skip
        assert other.recorded == 0

        # the baseline: a transaction per event (its raw row, then its rollups) on the same pool
        base = facts(deliveries(base_n, now, "b"), now)
        rows = []
        for kind, d, at, button in base:
            rows.append(("2000-01-01", d.id, 0, kind, button, "base", d.card, 3, "x1", d.data["variant"],
                         "rcs", "", button, at, at - now))  # fmt: skip
        pool = store.db.pool
        w0 = time.perf_counter()

        async def one(r: tuple[object, ...]) -> None:
            async with pool.acquire() as conn, conn.transaction():
                new = await conn.fetch(RAW_ARRAYS_SQL, *columns([r], len(RAW_COLUMNS)))
                if new:
                    await conn.executemany(ROLLUP_ROW_SQL, aggregate(new)[0])

        queue = list(rows)

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await events.rows.make_partition("2000-01-01")
        await asyncio.gather(*(worker() for _ in range(min(callers, 20))))
        base_wall = time.perf_counter() - w0
        print(f"  a transaction each {len(rows) / base_wall:7.0f} events/s (baseline, {len(rows)} events)")
        print(f"ratio (batched / a transaction each): {(m / wall) / (len(rows) / base_wall):.1f}x")

        day = bucket_of(now, "d")
        got = await events.counts("sf", "courier", day, day + 86400, experiment="x1")
        want: dict[str, dict[str, int]] = {}
        for kind, d, _at, button in todo:
            per = want.setdefault(d.data["variant"], {})
            per[kind] = per.get(kind, 0) + 1
            if button:
                per[f"tapped:{button}"] = per.get(f"tapped:{button}", 0) + 1
        assert got == want, (got, want)
        print(f"rollups equal the events: {sum(sum(v.values()) for v in got.values())} counted, each once")
        await events.close()
        await store.stop()
    finally:
        cluster.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--deliveries", type=int, default=20000)
    ap.add_argument("--baseline", type=int, default=2000)
    ap.add_argument("--callers", type=int, default=100)
    a = ap.parse_args()
    asyncio.run(main(a.deliveries, a.baseline, a.callers))
