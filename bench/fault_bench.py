"""Fault benchmark: the fault cases of tests/delivery/test_faults.py at full length, each on two
real `mingpian serve` workers over a throw-away PostgreSQL (fsync on) and redis-server with the
SMSC simulator, under 20 call events a second; one line of figures per case, in the format the
tests and the failover tests print (simulators/faults.py):

    <fault>: acknowledged N, lost N, sent twice N, charged twice N, first card out again X s after it began

1. a worker SIGSTOPped for 10 s, past its 1.5 s lease, then SIGCONTed;
2. a worker in a network namespace of its own cut off from PostgreSQL, then Redis, then the
   SMSC, 10 s each: silently (packets dropped: past the driver's timeouts), then refused (TCP
   resets) — root and nftables only, else said and skipped;
3. a worker's clock 2 s ahead of the other's, then 2 s behind (faketime), 15 s each;
4. the SMSC throttling (0x58) for 10 s, then closing the binds with submits in flight.

The baseline is the same fleet and load with no fault (`no fault`): what the cases' figures
are compared with. Run: .venv/bin/python bench/fault_bench.py [--cases paused,cut,clock,smsc]
[--short] (the tests' lengths, about two minutes)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from simulators import netcut  # noqa: E402
from simulators.faultcases import (  # noqa: E402
    Env,
    Inside,
    cut_off,
    libfaketime,
    open_to,
    paused,
    skewed,
    smsc_trouble,
)
from simulators.faults import Figures, Load, figures, start_worker, stop_workers, write_seed  # noqa: E402
from simulators.servers import PostgresCluster, RedisServer, pg_bin  # noqa: E402
from simulators.smsc import GatewaySim  # noqa: E402


async def baseline(env: Env, seconds: float) -> Figures:
    seed = write_seed(env.folder / "seed.yaml")
    workers = [start_worker(n, env.folder, env.settings(n, seed, 1.5)) for n in "ab"]
    try:
        async with aiohttp.ClientSession() as http:
            load = Load(http, {w.name: w.url for w in workers})
            load.start()
            began = time.time()
            await asyncio.sleep(seconds)
            await load.stop()
            db = env.database_url
            fig, _ = await figures("no fault", load, env.gateway, db, http, workers[0].url, began)
    finally:
        stop_workers(workers)
    return fig


class Servers:
    """A fresh database, Redis and SMSC per case (listening on `also` too, for a namespace)."""

    def __init__(self, root: Path, cluster: PostgresCluster, also: str = "") -> None:
        self.root, self.cluster, self.also = root, cluster, also
        self.n = 0

    async def __aenter__(self) -> Env:
        self.n += 1
        folder = self.root / f"case{self.n}"
        folder.mkdir()
        self.redis = RedisServer(folder / "redis", bind=f"127.0.0.1 {self.also}".strip())
        self.redis.start()
        self.gateway = GatewaySim(password="secret", verify=False)
        await self.gateway.start("0.0.0.0" if self.also else "127.0.0.1")
        return Env(folder, self.cluster.create_database(), self.redis.url, self.gateway)

    async def __aexit__(self, *exc: object) -> None:
        await self.gateway.stop()
        self.redis.stop()


def show(fig: Figures, base: Figures) -> None:
    rate = fig.acknowledged / base.acknowledged if base.acknowledged else 0.0
    print(f"{fig.line()}  [acknowledged {rate:.2f}× the baseline's]", flush=True)


async def main(a: argparse.Namespace) -> None:
    bindir = pg_bin()
    if bindir is None:
        sys.exit("PostgreSQL not found: run scripts/system-deps.sh")
    short = a.short
    root = Path(tempfile.mkdtemp(prefix="mingpian-faults-"))
    ns: netcut.Netns | None = None
    reason = netcut.missing() if "cut" in a.cases else None
    listen = "127.0.0.1"
    if "cut" in a.cases and reason is None:
        ns = netcut.Netns()
        ns.start()
        listen = f"127.0.0.1,{ns.host}"
    cluster = PostgresCluster(bindir, durable=True, settings={"listen_addresses": f"'{listen}'"})
    cluster.start()
    try:
        if ns is not None:
            open_to(cluster, f"{ns.address}/32")
        servers = Servers(root, cluster, ns.host if ns is not None else "")
        async with servers as env:
            base = await baseline(env, 5.0 if short else 15.0)
        print(base.line(), flush=True)
        if "paused" in a.cases:
            async with servers as env:
                show((await paused(env, pause=3.0 if short else 10.0, lease=1.5))[0], base)
        if "cut" in a.cases:
            if ns is None:
                print(f"cut-off: skipped ({reason})")
            else:
                for reset in (False, True):
                    async with servers as env:
                        url = env.database_url.replace("127.0.0.1", ns.host)
                        ports = {"PostgreSQL": cluster.port, "Redis": servers.redis.port,
                                 "SMSC": env.gateway.smpp_port}  # fmt: skip
                        inside = Inside(ns, url, env.redis_url.replace("127.0.0.1", ns.host), ports)
                        cut = 3.0 if short else 10.0
                        fig, why = await cut_off(env, inside, cut=cut, gap=3.0 if short else 5.0, reset=reset)
                        show(fig, base)
                        print(f"  logged by the cut-off worker: {why['logged']}", flush=True)
        if "clock" in a.cases:
            if libfaketime() is None:
                print("clocks apart: skipped (libfaketime not found: run scripts/system-deps.sh)")
            else:
                for skew in (2.0, -2.0):
                    async with servers as env:
                        seconds = 5.0 if short else 15.0
                        show((await skewed(env, skew=skew, lease=1.5, seconds=seconds))[0], base)
        if "smsc" in a.cases:
            async with servers as env:
                show((await smsc_trouble(env, throttle=2.0 if short else 10.0))[0], base)
    finally:
        cluster.stop()
        if ns is not None:
            ns.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="paused,cut,clock,smsc")
    p.add_argument("--short", action="store_true", help="the tests' lengths")
    asyncio.run(main(p.parse_args()))
