"""Outage benchmark: a real `mingpian serve` on PostgreSQL + Redis under steady call events, with
Redis stopped for a while and then PostgreSQL stopped for a while, each started again on its port.

What it runs: a throw-away PostgreSQL cluster (initdb, pg_ctl), a redis-server, the SMPP gateway
simulator in this process (receipts 0.8 s after each submit) and one server process. Call events
(`ended`, a fresh callee each) are posted at a steady rate; the chain is `[ussd, sms]` with a 5 s
USSD deadline, so a receipt lost in an outage shows as a fall-over to SMS (a second card).

Per phase (before, Redis down, PostgreSQL down, after) it prints the answers by status (2xx,
503, 500, other) and the lines the server logged at WARNING or above (tracebacks counted apart).
At the end, once every chain finished: deliveries by state, those failed for want of a receipt
and those delivered by SMS although the SMSC delivered their USSD card, and callees that got
more than one card at the simulator.

Run: .venv/bin/python bench/outage_bench.py [--rate 60] [--outage 10] [--root PATH]
     (--root: the source tree the server runs from, e.g. a worktree of an older commit)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import yaml  # noqa: E402

from tests.delivery.support import OPERATOR, SF_LINE, auth, seed_doc  # noqa: E402
from tests.support.gatewaysim import GatewaySim, Rule  # noqa: E402
from tests.support.postgres import PostgresCluster, pg_bin  # noqa: E402
from tests.support.processes import free_port, wait_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.templates import TEMPLATES  # noqa: E402


def start_server(root: Path, tmp: Path, db: str, redis: str, smpp: int, port: int) -> subprocess.Popen[bytes]:
    seed = tmp / "seed.yaml"
    policy = {"chain": ["ussd", "sms"], "timeouts": {"ussd": 5.0, "sms": 5.0}}
    now = time.time()
    package = {"id": "pool", "kind": "pool", "units": 10_000_000, "price": 50000.0, "policy": "stop",
               "valid_from": now - 86400, "valid_to": now + 86400}  # fmt: skip
    doc = seed_doc(policy=policy, packages=[package])
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        PYTHONPATH=str(root),
        MINGPIAN_PORT=str(port),
        MINGPIAN_TEMPLATE_DIR=str(TEMPLATES),
        MINGPIAN_DATA_DIR=str(tmp / "var"),
        MINGPIAN_DATABASE_URL=db,
        MINGPIAN_DELIVERY_COUNTERS="redis",
        MINGPIAN_REDIS_URL=redis,
        MINGPIAN_DELIVERY_SEED=str(seed),
        MINGPIAN_DELIVERY_SMPP=f"127.0.0.1:{smpp}",
        MINGPIAN_DELIVERY_SMPP_PASSWORD="secret",
        MINGPIAN_LOG_LEVEL="WARNING",
        MINGPIAN_LOG_FORMAT="text",
    )
    with (tmp / "server.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_port(port, proc, timeout=30)
    return proc


class Load:
    """Call events at a steady rate; answers counted into the current phase."""

    def __init__(self, base: str, rate: float) -> None:
        self.base, self.rate = base, rate
        self.phase = "before"
        self.answers: dict[str, Counter[str]] = {}
        self.accepted: list[str] = []
        self.n = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, http: aiohttp.ClientSession, i: int, phase: str) -> None:
        body = {"call_id": f"o{i}", "caller": SF_LINE, "callee": f"+86139{i:08d}", "phase": "ended"}
        try:
            async with http.post(f"{self.base}/api/calls", json=body, headers=auth(OPERATOR)) as r:
                await r.read()
                kind = "2xx" if r.status < 300 else str(r.status) if r.status in (500, 503) else "other"
                if r.status == 202:
                    self.accepted.append(f"o{i}:ended")
        except (aiohttp.ClientError, TimeoutError):
            kind = "no answer"
        self.answers.setdefault(phase, Counter())[kind] += 1

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            self.n += 1
            t = asyncio.create_task(self._one(http, self.n, self.phase))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
            await asyncio.sleep(max(0.0, start + self.n / self.rate - time.monotonic()))
        await asyncio.gather(*self._tasks)


def log_lines(path: Path, since: int) -> tuple[int, int, int]:
    """(lines at WARNING or above, of them ERROR, traceback headers) written after byte `since`."""
    with path.open("rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    lines = text.splitlines()
    loud = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or " CRITICAL " in ln]
    return len(loud), sum(" ERROR " in ln for ln in loud), sum(ln.startswith("Traceback") for ln in lines)


async def main(a: argparse.Namespace) -> None:
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL not found: run scripts/system-deps.sh")
    tmp = Path(tempfile.mkdtemp(prefix="mingpian-outage-"))
    pg = PostgresCluster(bindir)
    pg.start()
    redis = RedisServer(tmp / "redis")
    redis.start()
    sim = GatewaySim(password="secret")
    await sim.start()
    sim.rules = [Rule("deliver", delay=0.8)]
    port = free_port()
    db = pg.create_database()
    server = start_server(Path(a.root), tmp, db, redis.url, sim.smpp_port, port)
    log = tmp / "server.log"
    load = Load(f"http://127.0.0.1:{port}", a.rate)
    lines: dict[str, tuple[int, int, int]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            stop = asyncio.Event()
            runner = asyncio.create_task(load.run(http, stop))
            plan: list[tuple[str, Any, Any]] = [
                ("before", None, None),
                ("redis down", redis.stop, redis.start),
                ("between", None, None),
                ("postgresql down", lambda: pg.halt("fast"), pg.resume),
                ("after", None, None),
            ]
            for phase, down, up in plan:
                mark = log.stat().st_size
                load.phase = phase
                if down is not None:
                    await asyncio.to_thread(down)
                await asyncio.sleep(a.outage if down is not None else 4.0)
                if up is not None:
                    await asyncio.to_thread(up)
                lines[phase] = log_lines(log, mark)
            stop.set()
            await runner
            await asyncio.sleep(12)  # every chain's receipt or deadline (5 s each channel)
        conn = await asyncpg.connect(db)
        try:
            states = Counter(
                r[0]
                for r in await conn.fetch("SELECT state FROM deliveries WHERE id = ANY($1)", load.accepted)
            )
            no_receipt = await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE delivery = ANY($1) AND detail LIKE 'no receipt%'",
                load.accepted,
            )
            by_sms = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE id = ANY($1) AND state = 'delivered' "
                "AND channel = 'sms'",
                load.accepted,
            )
        finally:
            await conn.close()
    finally:
        server.terminate()
        server.wait(15)
        await sim.stop()
        redis.stop()
        pg.stop()
    print(f"server from {a.root}; {a.rate:g} call events/s; outages of {a.outage:g} s")
    print(
        f"{'phase':<17}{'2xx':>7}{'503':>7}{'500':>7}{'other':>7}"
        f"{'log lines':>11}{'errors':>8}{'tracebacks':>12}"
    )
    for phase, (loud, errors, tracebacks) in lines.items():
        c = load.answers.get(phase, Counter())
        other = c["other"] + c["no answer"]
        print(
            f"{phase:<17}{c['2xx']:>7}{c['503']:>7}{c['500']:>7}{other:>7}{loud:>11}{errors:>8}{tracebacks:>12}"
        )
    twice = sum(1 for n in sim.by_destination.values() if n > 1)
    print(f"accepted {len(load.accepted)}: deliveries {dict(states)}")
    print(f"attempts timed out for want of a receipt: {no_receipt}; delivered by SMS after USSD: {by_sms}")
    print(f"callees with more than one card at the SMSC: {twice}")
    print(f"(server log: {log})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=60.0, help="call events per second")
    p.add_argument("--outage", type=float, default=10.0, help="seconds each backend is down")
    p.add_argument("--root", default=str(ROOT), help="the source tree the server runs from")
    asyncio.run(main(p.parse_args()))
