"""Outage benchmark: a real `mingpian serve` on PostgreSQL + Redis under steady call events and
chatbot webhooks, with Redis stopped for a while and then PostgreSQL stopped for a while, each
started again on its port.

What it runs: a throw-away PostgreSQL cluster (initdb, pg_ctl; fsync and synchronous_commit on,
as deployed), a redis-server (no persistence: restarted, it keeps nothing) and one server
process: deliveries in PostgreSQL, their counters and the chatbot's state store (`store = redis`)
in Redis. In this process: the SMPP gateway simulator
(receipts 0.8 s after each submit) and the MaaP simulator, which takes the chatbot's replies. Two
loads at steady rates, side by side:
- call events (`ended`, a fresh callee each); the chain is `[ussd, sms]` with a 5 s USSD
  deadline, so a receipt lost in an outage shows as a fall-over to SMS (a second card);
- webhooks the MaaP posts to the courier bot: a user's tap on "查询物流", signed, a fresh message
  ID each. Enterprise sf owns that bot, so every tap is also looked up in PostgreSQL for its
  reports before the webhook is answered.

Per phase (before, Redis down, between, PostgreSQL down, after) it prints the answers of each
kind by status (2xx, 503, 500, other: an error status or no answer) and the lines the server
logged at WARNING or above (tracebacks counted apart). At the end, once every chain finished and
the outbox drained: deliveries by state, those failed for want of a receipt and those delivered by
SMS although the SMSC delivered their USSD card, callees that got more than one card at the SMSC,
webhooks answered 200 whose reply never reached the MaaP or reached it more than once, and webhooks
refused (the MaaP sends those again) whose turn was done and replied to all the same.

Run: .venv/bin/python bench/outage_bench.py [--rate 60] [--webhook-rate 20] [--outage 10] [--root PATH]
     (--root: the source tree the server runs from, e.g. a worktree of an older commit)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import yaml  # noqa: E402
from benchlib import free_port, spawn_server  # noqa: E402
from chatbot_bench import CHATBOT, drain, hook_url, maap_settings, signed_headers, start_simulator, tap_body  # noqa: E402

from simulators.seeds import OPERATOR, SF_LINE, seed_doc  # noqa: E402
from simulators.servers import PostgresCluster, RedisServer, pg_bin, wait_port  # noqa: E402
from simulators.smsc import GatewaySim, Rule  # noqa: E402

TEMPLATES = ROOT / "card_templates"


def write_seed(tmp: Path) -> Path:
    """The sample enterprises (simulators/seeds.py) with sf on a `[ussd, sms]` chain, a package
    that never runs out, and the courier bot."""
    now = time.time()
    package = {"id": "pool", "kind": "pool", "units": 10_000_000, "price": 50000.0, "policy": "stop",
               "valid_from": now - 86400, "valid_to": now + 86400}  # fmt: skip
    doc = seed_doc(
        policy={"chain": ["ussd", "sms"], "timeouts": {"ussd": 5.0, "sms": 5.0}}, packages=[package]
    )
    doc["enterprises"][0]["chatbot"] = CHATBOT
    seed = tmp / "seed.yaml"
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return seed


async def status_of(http: aiohttp.ClientSession, url: str, **kw: Any) -> int:
    async with http.post(url, **kw) as r:
        await r.read()
        return r.status


Send = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


class Load:
    """Requests of one kind at a steady rate (the i-th sent by `send`), answers counted into the
    current phase; `accepted` holds the i of those answered `ok`."""

    def __init__(self, rate: float, send: Send, ok: int) -> None:
        self.rate, self.send, self.ok = rate, send, ok
        self.phase = "before"
        self.answers: dict[str, Counter[str]] = {}
        self.accepted: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, http: aiohttp.ClientSession, i: int, phase: str) -> None:
        try:
            status = await self.send(http, i)
            kind = "2xx" if status < 300 else str(status) if status in (500, 503) else "other"
            if status == self.ok:
                self.accepted.append(i)
        except (aiohttp.ClientError, TimeoutError):
            kind = "other"
        self.answers.setdefault(phase, Counter())[kind] += 1

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        start, n = time.monotonic(), 0
        while not stop.is_set():
            n += 1
            t = asyncio.create_task(self._one(http, n, self.phase))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
            await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
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
    pg = PostgresCluster(bindir, durable=True)  # fsync and synchronous_commit on, as deployed
    pg.start()
    redis = RedisServer(tmp / "redis")
    redis.start()
    sim = GatewaySim(password="secret")
    await sim.start()
    sim.rules = [Rule("deliver", delay=0.8)]
    maap, maap_runner, maap_port = await start_simulator()
    port = free_port()
    db = pg.create_database()
    settings = {
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(tmp / "var"),
        "MINGPIAN_DATABASE_URL": db,
        "MINGPIAN_DELIVERY_COUNTERS": "redis",
        "MINGPIAN_STORE": "redis",
        "MINGPIAN_REDIS_URL": redis.url,
        "MINGPIAN_DELIVERY_SEED": str(write_seed(tmp)),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{sim.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        **maap_settings(maap, maap_port),
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
    }
    log = tmp / "server.log"
    server = spawn_server(settings, log, Path(a.root))
    base = f"http://127.0.0.1:{port}"

    def call_event(http: aiohttp.ClientSession, i: int) -> Awaitable[int]:
        body = {"call_id": f"o{i}", "caller": SF_LINE, "callee": f"+86139{i:08d}", "phase": "ended"}
        return status_of(
            http, f"{base}/api/calls", json=body, headers={"Authorization": f"Bearer {OPERATOR}"}
        )

    def webhook(http: aiohttp.ClientSession, i: int) -> Awaitable[int]:
        return status_of(http, hook_url(base), data=tap_body("w", i), headers=signed_headers(f"w-{i}"))

    loads = {
        "call events": Load(a.rate, call_event, ok=202),
        "webhooks": Load(a.webhook_rate, webhook, ok=200),
    }
    lines: dict[str, tuple[int, int, int]] = {}
    try:
        await asyncio.to_thread(wait_port, port, server, 30)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            stop = asyncio.Event()
            runners = [asyncio.create_task(load.run(http, stop)) for load in loads.values()]
            plan: list[tuple[str, Any, Any]] = [
                ("before", None, None),
                ("redis down", redis.stop, redis.start),
                ("between", None, None),
                ("postgresql down", lambda: pg.halt("fast"), pg.resume),
                ("after", None, None),
            ]
            for phase, down, up in plan:
                mark = log.stat().st_size
                for load in loads.values():
                    load.phase = phase
                if down is not None:
                    await asyncio.to_thread(down)
                await asyncio.sleep(a.outage if down is not None else 4.0)
                if up is not None:
                    await asyncio.to_thread(up)
                lines[phase] = log_lines(log, mark)
            stop.set()
            await asyncio.gather(*runners)
            await asyncio.sleep(12)  # every chain's receipt or deadline (5 s each channel)
        replies = await drain(maap, "w", loads["webhooks"].accepted, timeout=30)
        accepted = [f"o{i}:ended" for i in loads["call events"].accepted]
        conn = await asyncpg.connect(db)
        try:
            states = Counter(
                r[0] for r in await conn.fetch("SELECT state FROM deliveries WHERE id = ANY($1)", accepted)
            )
            no_receipt = await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE delivery = ANY($1) AND detail LIKE 'no receipt%'",
                accepted,
            )
            by_sms = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE id = ANY($1) AND state = 'delivered' "
                "AND channel = 'sms'",
                accepted,
            )
        finally:
            await conn.close()
    finally:
        server.terminate()
        server.wait(15)
        await maap_runner.cleanup()
        await sim.stop()
        redis.stop()
        pg.stop()
    print(
        f"server from {a.root}; {a.rate:g} call events/s and {a.webhook_rate:g} webhooks/s; "
        f"outages of {a.outage:g} s"
    )
    statuses = ("2xx", "503", "500", "other")
    print((f"{'':<20}" + "".join(f"{kind:<24}" for kind in loads)).rstrip())
    print(f"{'phase':<17}" + "".join(f"{s:>6}" for s in statuses) * 2 + "  log lines  errors  tracebacks")
    for phase, (loud, errors, tracebacks) in lines.items():
        counts = [load.answers.get(phase, Counter())[s] for load in loads.values() for s in statuses]
        print(f"{phase:<17}" + "".join(f"{c:>6}" for c in counts) + f"{loud:>11}{errors:>8}{tracebacks:>12}")
    twice = sum(1 for n in sim.by_destination.values() if n > 1)
    print(f"call events accepted {len(accepted)}: deliveries {dict(states)}")
    print(f"attempts timed out for want of a receipt: {no_receipt}; delivered by SMS after USSD: {by_sms}")
    print(f"callees with more than one card at the SMSC: {twice}")
    acked = {f"c-w-{i}" for i in loads["webhooks"].accepted}
    refused = sum(1 for c in maap.replies_to if c.startswith("c-w-") and c not in acked)
    print(
        f"webhooks answered 200: {len(acked)}: replies lost {replies['lost']}, duplicates "
        f"{replies['duplicates']}; webhooks not answered 200 that got a reply all the same: {refused}"
    )
    print(f"(server log: {log})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=60.0, help="call events per second")
    p.add_argument("--webhook-rate", type=float, default=20.0, help="chatbot webhooks per second")
    p.add_argument("--outage", type=float, default=10.0, help="seconds each backend is down")
    p.add_argument("--root", default=str(ROOT), help="the source tree the server runs from")
    asyncio.run(main(p.parse_args()))
