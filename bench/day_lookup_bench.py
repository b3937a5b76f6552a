"""What naming a row's day saves the hot path's lookups by id on the day-partitioned tables: the
chain's statements with their day (one partition) against the same by id alone (every kept
day's partition probed), on deliveries and attempts kept 90 days. PostgreSQL (a throw-away
initdb cluster), the store's own connections and statements (delivery/rows/*.py), their plans
the generic ones a prepared statement keeps; one task, so each figure is one statement's time
(µs, client round trip included) and PostgreSQL's CPU per statement.

Run: .venv/bin/python bench/day_lookup_bench.py [--days 90] [--per-day 2000] [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
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
from delivery.retention import Retention  # noqa: E402
from delivery.rows.attempts import ATTEMPT_ANY_DAY_SQL, ATTEMPT_SQL  # noqa: E402
from delivery.rows.calls import DELIVERY_BY_ID, DELIVERY_BY_ID_DAY, update_sql  # noqa: E402
from delivery.store import PgDeliveryStore  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402

FILL_DELIVERIES = (
    "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
    "chain, step, state, reason, channel, event_at, created, updated, owner, lease_until, day) "
    "SELECT $1 || g, $1 || g, 'ended', 'e', '+8610', '+86138' || g, 'c', 't', 'hangup', '{}', '[\"sms\"]', "
    "0, 'done', '', 'sms', $2, $2, $2, '', 0, $3 FROM generate_series(1, $4) g"
)
FILL_ATTEMPTS = (
    "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, done, "
    "detail, day) SELECT $1 || g, 0, 'sms', 'delivered', 1, 1, $2, $2, $2, '', $3 "
    "FROM generate_series(1, $4) g"
)


async def timed(
    store: PgDeliveryStore, pg: PostgresCluster, n: int, sql: str, args: list[list[object]]
) -> tuple[float, float]:
    """(µs per statement, PostgreSQL CPU µs per statement) over `n` runs cycling through `args`."""
    for a in args[:10]:  # prepared and its generic plan chosen
        await store.db.all(sql, *a)
    cpu0, t0 = tree_cpu(pg._postmaster()), time.perf_counter()
    for i in range(n):
        await store.db.all(sql, *args[i % len(args)])
    wall, cpu = time.perf_counter() - t0, tree_cpu(pg._postmaster()) - cpu0
    return wall / n * 1e6, cpu / n * 1e6


async def main(a: argparse.Namespace) -> None:
    pg = PostgresCluster(pg_bin())
    pg.start()
    try:
        url = pg.create_database()
        store = PgDeliveryStore(url)
        await store.start()
        conn = await asyncpg.connect(url)
        print(f"PostgreSQL {await conn.fetchval('SHOW server_version')}")
        now = time.time()
        r = Retention(store.db)
        for k in range(a.days):
            for t in ("deliveries", "attempts"):
                await r.make_ahead(t, now - k * 86400)
        today = date.fromisoformat(day_of(now))
        days = [(today - timedelta(days=k)).isoformat() for k in range(a.days)]
        for k, day in enumerate(days):
            at = now - k * 86400
            await conn.execute(FILL_DELIVERIES, f"d{day}-", at, day, a.per_day)
            await conn.execute(FILL_ATTEMPTS, f"d{day}-", at, day, a.per_day)
        await conn.execute("VACUUM ANALYZE deliveries")
        await conn.execute("VACUUM ANALYZE attempts")
        parts = len(await r.rows.days("deliveries")) + 1
        print(f"{parts} partitions of deliveries and of attempts, {a.per_day * a.days:,} rows each")

        recent = days[:2]  # the chain's rows: today's and yesterday's
        keys = [(f"d{d}-{i}", d) for d in recent for i in range(1, 200)]
        upd_day, upd_any = update_sql("deliveries", ("state",)), update_sql("deliveries", ("state",), False)
        cases = [
            ("delivery by id", DELIVERY_BY_ID, [[k] for k, _ in keys], DELIVERY_BY_ID_DAY,
             [[k, d] for k, d in keys]),
            ("attempt by delivery, step", ATTEMPT_ANY_DAY_SQL, [[k, 0] for k, _ in keys], ATTEMPT_SQL,
             [[k, 0, d] for k, d in keys]),
            ("update of a delivery by id", upd_any, [[[k], ["done"]] for k, _ in keys], upd_day,
             [[[k], ["done"], d] for k, d in keys]),
        ]  # fmt: skip
        print(f"| statement | by id alone ({parts} partitions): µs, PostgreSQL CPU µs | with its day (1): "
              "µs, PostgreSQL CPU µs | ratio |")  # fmt: skip
        print("|---|---|---|---|")
        for name, any_sql, any_args, day_sql, day_args in cases:
            w0, c0 = await timed(store, pg, a.n, any_sql, any_args)
            w1, c1 = await timed(store, pg, a.n, day_sql, day_args)
            print(
                f"| {name} | {w0:.0f}, {c0:.0f} | {w1:.0f}, {c1:.0f} | "
                f"×{w0 / w1:.1f}, CPU ×{c0 / max(c1, 1):.1f} |"
            )
        await conn.close()
        await store.stop()
    finally:
        pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--per-day", type=int, default=2000)
    p.add_argument("--n", type=int, default=3000)
    asyncio.run(main(p.parse_args()))
