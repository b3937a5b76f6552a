"""Event ingest into the rollups, one worker process, PostgreSQL with fsync and synchronous_commit
on (delivery/events.py).

Callers record the facts of stored deliveries as the service does (sent, delivered, displayed,
opened, tapped with a button; two variants of one card): each fact is written to the inbox
through the group commit and each caller waits for the commit, as a receipt's or a tap's answer
does; the worker's roller claims the inbox in batches, each one transaction (claim joined with
the deliveries and first attempts, raw events inserted once, the minute/hour/day rollups and
latency histograms updated from the new ones). Printed: events per second of wall time and CPU
microseconds per event (recording, committing and rolling, until `settled()`), then the same
facts again from a second Events that has not seen them (another worker hearing repeats:
nothing may count twice), and two baselines measured in the same run with their ratios: the
previous design (facts kept in memory and written in batches, lost if the process is killed)
and one transaction per event (insert, then its rollups). Last, the check that the rollups
equal the events. Redis holds the delivery counters, which this path does not touch; it is not
started.

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

from delivery.events import BATCH, Events, aggregate, bucket_of  # noqa: E402
from delivery.metering.ledger import day_of  # noqa: E402
from delivery.records import Delivery  # noqa: E402
from delivery.rows.events import (  # noqa: E402
    RAW_ARRAYS_SQL,
    RAW_COLUMNS,
    ROLLUP_ROW_SQL,
    InboxEvent,
    columns,
)
from delivery.rows.partitions import PartitionRows  # noqa: E402
from delivery.store import PgDeliveryStore  # noqa: E402
from infra import jsonio  # noqa: E402
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


STORE_SQL = (
    "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
    "chain, step, state, reason, channel, event_at, created, updated) SELECT id, id, 'ended', 'sf', "
    "'+8610', id, 'courier', 't', 'hangup', data, '[\"rcs\"]', 0, 'delivered', '', 'rcs', at, at, at "
    "FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(id, data, at)"
)
FIRST_SQL = (
    "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail) SELECT id, 0, 'rcs', 'delivered', 1, 1, at, at + 60, at + 3, '' FROM unnest($1::text[], "
    "$2::float8[]) AS u(id, at)"
)


async def stored(store: PgDeliveryStore, ds: list[Delivery]) -> None:
    """The deliveries' rows and first attempts (a roll reads each fact's card and variant there)."""
    await store.db.pool.execute(
        STORE_SQL, [d.id for d in ds], [jsonio.dumps_str(d.data) for d in ds], [d.created for d in ds]
    )
    await store.db.pool.execute(FIRST_SQL, [d.id for d in ds], [d.created for d in ds])


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
        for kind, d, at, button in mine:
            await events.record(kind, d, 0, "rcs", at, key=button, button=button)
            await events.rows.db.durable()  # its request is answered once it committed

    await asyncio.gather(*(caller(c) for c in chunks))
    await events.settled()
    return time.perf_counter() - w0, time.process_time() - c0


async def in_memory(
    store: PgDeliveryStore, todo: list[tuple[str, Delivery, float, str]], callers: int
) -> tuple[float, float]:
    """The previous design, as a baseline: facts kept in memory (lost if the process is killed)
    and written in batches of the same size, raw events and rollups in one transaction each."""
    from delivery.rows.events import EventRows

    rows = EventRows(store.db)
    queue: list[tuple[object, ...]] = []
    chunks = [todo[i::callers] for i in range(callers)]
    w0, c0 = time.perf_counter(), time.process_time()

    async def flush() -> None:
        while queue:
            batch = queue[:BATCH]
            del queue[:BATCH]
            await rows.add(batch, aggregate)

    async def caller(mine: list[tuple[str, Delivery, float, str]]) -> None:
        for i, (kind, d, at, button) in enumerate(mine):
            for key, b in ((button, button), ("", "")) if button else (("", ""),):
                queue.append((day_of(d.created), d.id, 0, kind, key, "mem", d.card, 3, "x1",
                              d.data["variant"], "rcs", "", b, at, at - d.created))  # fmt: skip
            if len(queue) >= BATCH:
                await flush()
            if i % 64 == 63:
                await asyncio.sleep(0)

    await asyncio.gather(*(caller(c) for c in chunks))
    await flush()
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
        ds = deliveries(n, now, "d")
        await stored(store, ds)
        todo = facts(ds, now)
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
        await other.close()  # their rollers stop: the next phases measure one roller each
        await events.close()
        # the roller alone: the inbox filled first (as a worker finds it after another one died)
        ds3 = deliveries(n, now, "r")
        await stored(store, ds3)
        filler = Events(store.db)
        for i, (kind, d, at, button) in enumerate(facts(ds3, now)):
            await filler.rows.inbox(InboxEvent(d.id, 0, kind, button, "rcs", "", button, at))
            if button:
                await filler.rows.inbox(InboxEvent(d.id, 0, kind, "", "rcs", "", "", at))
            if i % 2000 == 1999:
                await store.db.durable()
        await store.db.durable()
        roller = Events(store.db)
        w0, c0 = time.perf_counter(), time.process_time()
        rolled = await roller.flush()
        wall3, cpu3 = time.perf_counter() - w0, time.process_time() - c0
        assert rolled == m, (rolled, m)
        print(f"  the roll alone   {m / wall3:9.0f} events/s  {1e6 * cpu3 / m:6.1f} µs CPU per event  "
              f"(an inbox of {m} rolled into the rollups)")  # fmt: skip
        memory = facts(deliveries(n, now, "m"), now)
        wall_m, cpu_m = await in_memory(store, memory, callers)
        print(f"  in memory        {m / wall_m:9.0f} events/s  {1e6 * cpu_m / m:6.1f} µs CPU per event  "
              "(baseline: the previous design, lost on a kill)")  # fmt: skip
        print(f"ratio (inbox / in memory): {(m / wall) / (m / wall_m):.2f}x events/s, "
              f"{cpu / cpu_m:.2f}x CPU per event; the roll alone / in memory: "
              f"{(m / wall3) / (m / wall_m):.2f}x events/s")  # fmt: skip

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

        await PartitionRows(events.rows.db).make("delivery_events", "2000-01-01")
        await asyncio.gather(*(worker() for _ in range(min(callers, 20))))
        base_wall = time.perf_counter() - w0
        print(f"  a transaction each {len(rows) / base_wall:7.0f} events/s (baseline, {len(rows)} events)")
        print(f"ratio (batched / a transaction each): {(m / wall) / (len(rows) / base_wall):.1f}x")

        day = bucket_of(now, "d")
        got = await events.counts("sf", "courier", day, day + 86400, experiment="x1")
        want: dict[str, dict[str, int]] = {}
        for kind, d, _at, button in todo + facts(ds3, now):  # the facts recorded and the inbox rolled
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
