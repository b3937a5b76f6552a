"""A child process for the race tests: consume one unit `n` times from a shared pool, as fast as
possible, after a common start time; prints how many consumptions succeeded."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from delivery.metering import Package
from delivery.metering.redis import RedisCounters
from delivery.metering.sqlite import SqliteCounters
from delivery.store import SqliteDeliveryStore


async def main(kind: str, where: str, tag: str, n: int, start_at: float) -> None:
    pool = [Package("pool", "ent", 500, "stop", 0.01, 0.0)]
    if kind == "redis":
        counters: RedisCounters | SqliteCounters = RedisCounters(where)
    else:
        store = SqliteDeliveryStore(Path(where))
        store.open()
        counters = SqliteCounters(store)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(*(counters.consume(f"{tag}:{i}", pool, 1) for i in range(n)))
    print(sum(r.ok for r in results), flush=True)
    await counters.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
