"""Redis behind Sentinel: what waiting for a replica costs a package's charge, and what a master's
death costs the charges in flight.

What it runs: a Redis master with two replicas and three Redis Sentinels (simulators/sentinel.py,
`down-after-milliseconds` 1000), reached through `redis+sentinel://`, and the delivery counters
(delivery/metering/redis.py) taking charges from `--callers` concurrent callers in a closed loop,
each charge a fresh key on one package, as the chains do.

1. Charges per second and their latency (p50, p99) for `--seconds` s, by one caller and by
   `--callers`: without waiting for a replica (`redis_wait_replicas = 0`, the baseline) and with
   `WAIT 1` after each batch that carries a charge (`redis_wait_replicas = 1`), twice each in
   turn; the ratio of the two.
2. The master killed (SIGKILL) under the same load, with `WAIT 1`, then again (the promoted
   master, with the one replica left) without: seconds until a charge succeeds again, charges
   refused meanwhile (callers retry them under the same key, as a chain does), and after it the
   package's count in Redis against the charges the callers were told succeeded (fewer in
   Redis: charges lost, units that could be spent again).

Run: .venv/bin/python bench/redis_failover_bench.py [--callers 64] [--seconds 3] [--down-after 1]
     [--failover-only]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.exceptions import RedisError  # noqa: E402

from delivery.metering.packages import Package  # noqa: E402
from delivery.metering.redis import RedisCounters  # noqa: E402
from simulators.sentinel import SentinelGroup  # noqa: E402

PACKAGE = Package("pool1", "ent", 10**9, "stop", 0.05, 0.0)


class Load:
    def __init__(self, counters: RedisCounters, callers: int) -> None:
        self.counters, self.callers = counters, callers
        self.latencies: list[float] = []
        self.ok: set[str] = set()  # keys the callers were told were charged
        self.refused = 0
        self.last_ok = 0.0
        self.stop = False
        self.n = 0

    async def _caller(self) -> None:
        while not self.stop:
            self.n += 1
            key = f"c{self.n}"
            while not self.stop:  # a refused charge is tried again under its key, as a chain does
                t = time.perf_counter()
                try:
                    charge = await self.counters.consume(key, [PACKAGE], 1)
                except (RedisError, OSError):
                    self.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                assert charge.ok
                self.latencies.append(time.perf_counter() - t)
                self.ok.add(key)
                self.last_ok = time.time()
                break

    async def run(self, seconds: float) -> None:
        tasks = [asyncio.create_task(self._caller()) for _ in range(self.callers)]
        await asyncio.sleep(seconds)
        self.stop = True
        await asyncio.gather(*tasks)


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 2 else float("nan")


async def steady(group: SentinelGroup, wait: int, callers: int, seconds: float) -> float:
    counters = RedisCounters(group.url, None, prefix=f"bench{wait}:", wait=(wait, 0.5))
    try:
        await Load(counters, callers).run(0.5)  # warm: connections, scripts
        load = Load(counters, callers)
        await load.run(seconds)
    finally:
        await counters.close()
    rate = len(load.latencies) / seconds
    print(
        f"  {callers:3d} caller(s), wait for {wait} replica(s): {rate:8.0f} charges/s"
        f"   p50 {_ms(load.latencies, 50):6.2f} ms   p99 {_ms(load.latencies, 99):6.2f} ms"
    )
    return rate


async def failover(group: SentinelGroup, wait: int, callers: int) -> None:
    counters = RedisCounters(group.url, None, prefix=f"fo{wait}:", wait=(wait, 0.5))
    load = Load(counters, callers)
    running = asyncio.create_task(load.run(3600))
    await asyncio.sleep(1.5)
    refused_before = load.refused
    old = await asyncio.to_thread(group.kill_master)
    killed = time.time()
    while load.last_ok <= killed:
        await asyncio.sleep(0.01)
    back = load.last_ok - killed
    await asyncio.sleep(1.0)
    load.stop = True
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    for _ in range(100):  # a sentinel that has not heard of the promotion yet names the dead master
        try:
            used, _ = await counters.usage(PACKAGE.key)
            break
        except (RedisError, OSError):
            await asyncio.sleep(0.1)
    await counters.close()
    print(
        f"  WAIT {wait}, master {old} killed: first charge again after {back:.2f} s; charges refused "
        f"meanwhile {load.refused - refused_before}; told charged {len(load.ok)}, counted in Redis {used}, "
        f"lost {max(0, len(load.ok) - used)}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--down-after", type=float, default=1.0, help="sentinels' down-after, s")
    parser.add_argument("--failover-only", action="store_true", help="skip the steady runs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mingpian-sentinel-"))
    group = SentinelGroup(folder, replicas=2, sentinels=3, down_after=args.down_after)
    await asyncio.to_thread(group.start)
    try:
        print("charges in a closed loop through redis+sentinel://, without WAIT and with (twice, in turn)")
        for callers in () if args.failover_only else (1, args.callers):
            rates: dict[int, list[float]] = {0: [], 1: []}
            for wait in (0, 1, 0, 1):
                rates[wait].append(await steady(group, wait, callers, args.seconds))
            ratio = statistics.mean(rates[1]) / statistics.mean(rates[0])
            print(f"  {callers} caller(s): charges/s with WAIT 1 / without: {ratio:.2f}")
        print(
            f"failover under load (down-after-milliseconds {args.down_after * 1000:.0f}): with WAIT 1 "
            "(two replicas), then without (the one replica left)"
        )
        await failover(group, 1, args.callers)
        await asyncio.to_thread(group.wait_settled)
        await failover(group, 0, args.callers)
    finally:
        group.stop()


if __name__ == "__main__":
    asyncio.run(main())
