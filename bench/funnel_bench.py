"""The delivery funnel's facts on PostgreSQL (fsync on): what recording "displayed" costs when the
facts ride the store's group commit (delivery/funnel.py → rows/funnel.py → pgbatch.py), against
the baseline of one transaction per fact (its insert, then its day's counter) on the same pool.

Both record the same number of new facts from the same number of concurrent callers (5G displayed
reports, H5 pages opened), then every fact again (a platform resending its reports) from a funnel
that has not seen them (another worker): each repeat must change nothing. Printed: facts per
second and transactions committed for each (the group commit's flushes), the ratios, and the
check that the daily counters equal the facts.

Run: .venv/bin/python bench/funnel_bench.py [--facts 4000] [--callers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from delivery.funnel import Funnel  # noqa: E402
from delivery.metering import day_of  # noqa: E402
from delivery.rows.funnel import COUNT_ROW_SQL, FACT_ROW_SQL  # noqa: E402
from delivery.store import PgDeliveryStore  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402


async def _seed(url: str, n: int, prefix: str) -> None:
    """n deliveries of one enterprise with one delivered attempt each (the facts' day is theirs)."""
    now = time.time()
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, done, "
            "detail) VALUES ($1, 0, 'sms', 'delivered', 1, 1, $2, $2, $2, '')",
            [(f"{prefix}{i}", now) for i in range(n)],
        )
    finally:
        await conn.close()


async def _run(callers: int, facts: list[str], record: object) -> float:
    queue = list(facts)
    t0 = time.perf_counter()

    async def caller() -> None:
        while queue:
            await record(queue.pop())  # type: ignore[operator]

    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.perf_counter() - t0


async def main(n: int, callers: int) -> None:
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL not found (initdb)")
    cluster = PostgresCluster(bindir, durable=True)  # fsync and synchronous_commit on, as deployed
    cluster.start()
    try:
        url = cluster.create_database()
        store = PgDeliveryStore(url)
        await store.start()
        await _seed(url, n, "g")
        await _seed(url, n, "b")
        now = time.time()
        day = day_of(now)
        print(
            f"funnel bench: {n} new facts then {n} repeats, {callers} concurrent callers, PostgreSQL fsync on"
        )

        # the group commit, as the service records them
        async def grouped(funnel: Funnel) -> object:
            async def record(d: str) -> None:
                await funnel.displayed(d, 0, "sms", "e", now, how="h5")

            return record

        group = store.db.group
        f0 = group.flushes
        first = await _run(callers, [f"g{i}" for i in range(n)], await grouped(Funnel(store)))
        f1 = group.flushes
        again = await _run(callers, [f"g{i}" for i in range(n)], await grouped(Funnel(store)))
        f2 = group.flushes

        # the baseline: a transaction per fact on the same pool
        pool = store.db.pool

        async def one_by_one(d: str) -> None:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    FACT_ROW_SQL["postgresql"], d, 0, "displayed", "b", "sms", day, "h5", now
                )
                if row:
                    await conn.execute(COUNT_ROW_SQL["displayed"], "b", row[0], "sms")

        base_first = await _run(callers, [f"b{i}" for i in range(n)], one_by_one)
        base_again = await _run(callers, [f"b{i}" for i in range(n)], one_by_one)

        for name, secs, commits in (
            ("group commit, new", first, f1 - f0),
            ("group commit, repeats", again, f2 - f1),
            ("a transaction each, new", base_first, n),
            ("a transaction each, repeats", base_again, n),
        ):
            print(f"  {name:28} {n / secs:8.0f} facts/s  {commits:6d} commits ({commits / n:.3f} per fact)")
        print(f"ratio (group commit / a transaction each), new facts: {base_first / first:.1f}x faster")
        print(f"ratio, repeats: {base_again / again:.1f}x faster")
        got = {r["day"]: r["displayed"] for r in await store.funnel_days("e", day, day)}
        base = {r["day"]: r["displayed"] for r in await store.funnel_days("b", day, day)}
        facts = await store.db.one("SELECT count(*) FROM funnel_facts WHERE enterprise = 'e'")
        assert got == base == {day: n} and facts is not None and facts[0] == n, (got, base, facts)
        print(f"counters equal the facts: {n} displayed, each once")
        await store.stop()
    finally:
        cluster.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", type=int, default=4000)
    ap.add_argument("--callers", type=int, default=100)
    a = ap.parse_args()
    asyncio.run(main(a.facts, a.callers))
