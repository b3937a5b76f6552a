"""Delivery benchmark: call events → cards handed to the SMSC, one server process.

One run, against the same server process and with the same load generator (its own process):
1. bare GET /healthz, closed loop: the HTTP ceiling of this machine;
2. POST /api/calls (`ringing`, a fresh call id and callee each), closed loop: sustained
   events/s (acknowledged with 202);
3. POST /api/calls, open loop at 80% of the 2,000 events/s target (or of the measured maximum,
   if lower): p50/p99 time from the event's scheduled send time to the submit_sm arriving at
   the gateway simulator (this process; USSD, the first channel of the chain);
for the SQLite counters, then the Redis counters (a private redis-server). The simulator
counts submits per callee: a callee with two submits is a double send, an acknowledged event
with none is lost; the usage report's message count is compared with the deliveries (double
charges).

Run: .venv/bin/python bench/delivery_bench.py [--seconds 5] [--concurrency 32] [--counters sqlite,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from benchlib import free_port, redis_server, spawn_server, wait_port  # noqa: E402
from loadclient import HttpError, KeepAlive  # noqa: E402

from simulators.smsc import GatewaySim  # noqa: E402

TARGET = 2000.0
KEY = "mpk_bench-operator-key-0123456789abcdef"
LINE = "+8613800000001"


def callee(prefix: int, i: int) -> str:
    return f"+861{prefix}{i:08d}"


# ---- load generator (a child process) ----------------------------------------------------------


async def _generate(a: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(a.url)
    limit = a.concurrency if a.mode == "closed" else 1024
    client = KeepAlive(url.hostname or "127.0.0.1", url.port or 80, limit)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    lat: list[float] = []
    sent: dict[int, float] = {}
    errors = 0
    try:

        async def one(i: int, start: float, wall: float) -> None:
            nonlocal errors
            if url.path.endswith("/healthz"):
                request, want = client.prepare("GET", url.path, {}), 200
            else:
                event = {"call_id": f"{a.prefix}-{i}", "caller": LINE, "callee": callee(a.prefix, i)}
                body = json.dumps({**event, "phase": "ringing"}).encode()
                request, want = client.prepare("POST", url.path, headers, body), 202
            try:
                status, _ = await client.send(request)
                ok = status == want
            except HttpError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - start)
                sent[i] = wall
            else:
                errors += 1

        t0, w0 = time.perf_counter(), time.time()
        end = t0 + a.seconds
        counter = iter(range(10**8))
        if a.mode == "closed":

            async def worker() -> None:
                while time.perf_counter() < end:
                    await one(next(counter), time.perf_counter(), time.time())

            await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        else:
            tasks: set[asyncio.Task[None]] = set()
            for i in range(int(a.rate * a.seconds)):
                due = t0 + i / a.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t = asyncio.ensure_future(one(i, due, w0 + i / a.rate))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    finally:
        await client.close()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "ok": len(lat),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(lat) / elapsed,
        "p50": pct(0.5),
        "p99": pct(0.99),
        "sent": sent,
    }


def generator_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    for name, kind, default in (
        ("--url", str, ""),
        ("--mode", str, "closed"),
        ("--concurrency", int, 32),
        ("--rate", float, 1000.0),
        ("--seconds", float, 5.0),
        ("--prefix", int, 30),
        ("--out", str, ""),
    ):
        ap.add_argument(name, type=kind, default=default)
    a = ap.parse_args(argv)
    Path(a.out).write_text(json.dumps(asyncio.run(_generate(a))))


# ---- orchestration -------------------------------------------------------------------------


async def generate(
    tmp: Path, url: str, mode: str, seconds: float, prefix: int, concurrency: int = 32, rate: float = 0.0
) -> dict[str, Any]:
    out = tmp / f"gen-{prefix}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--generator",
        "--url",
        url,
        "--mode",
        mode,
        "--seconds",
        str(seconds),
        "--concurrency",
        str(concurrency),
        "--rate",
        str(rate),
        "--prefix",
        str(prefix),
        "--out",
        str(out),
    )
    await proc.wait()
    result = json.loads(out.read_text())
    result["sent"] = {int(k): v for k, v in result["sent"].items()}
    return result


async def drain(sim: GatewaySim, prefix: int, sent: dict[int, float], timeout: float = 60) -> dict[str, Any]:
    """Wait for a submit for every acknowledged event; latency from the event to the submit."""
    want = {callee(prefix, i)[3:]: i for i in sent}
    t0 = time.perf_counter()
    end = time.monotonic() + timeout
    while time.monotonic() < end and not want.keys() <= sim.by_destination.keys():
        await asyncio.sleep(0.05)
    first: dict[str, float] = {}
    for s in sim.submits:
        if s["destination"] in want and s["destination"] not in first:
            first[s["destination"]] = s["at"]
    lat = sorted((first[d] - sent[i]) * 1000 for d, i in want.items() if d in first)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {
        "lost": len(want.keys() - first.keys()),
        "double": sum(1 for d in want if sim.by_destination.get(d, 0) > 1),
        "p50": pct(0.5),
        "p99": pct(0.99),
        "max": lat[-1] if lat else float("nan"),
        "drain_s": time.perf_counter() - t0,
    }


def seed(path: Path) -> None:
    sample = json.loads((ROOT / "card_templates" / "staff-card" / "sample.json").read_text("utf-8"))
    now = time.time()
    path.write_text(
        yaml.safe_dump(
            {
                "operator_keys": [KEY],
                "enterprises": [
                    {
                        "id": "bench",
                        "name": "基准测试企业",
                        "signature": "基准测试",
                        "policy": {"chain": ["ussd", "flash", "sms"]},
                        "staff": [{"id": "s1", "name": "陈思远", "data": {"employee": sample["employee"]}}],
                        "lines": [{"number": LINE, "staff": "s1", "verified": True}],
                        "cards": [
                            {
                                "id": "pre",
                                "phase": "ringing",
                                "template": "staff-card",
                                "data": {"company": sample["company"]},
                            }
                        ],
                        "packages": [
                            {
                                "id": "pool",
                                "kind": "pool",
                                "units": 10_000_000,
                                "price": 50000.0,
                                "policy": "stop",
                                "valid_from": now - 86400,
                                "valid_to": now + 86400,
                            }
                        ],
                    }
                ],
            },
            allow_unicode=True,
        ),
        "utf-8",
    )


async def usage_messages(base: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{base}/api/enterprises/bench/usage?by=channel", headers={"Authorization": f"Bearer {KEY}"}
        ) as r,
    ):
        return sum(row["messages"] for row in (await r.json())["rows"])


async def bench(
    counters: str, sim: GatewaySim, tmp: Path, a: argparse.Namespace, redis_url: str = ""
) -> None:
    port = free_port()
    seed(tmp / "seed.yaml")
    settings = {
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_DATA_DIR": str(tmp / f"var-{counters}"),
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_DELIVERY_SEED": str(tmp / "seed.yaml"),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{sim.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_DELIVERY_COUNTERS": counters,
        "MINGPIAN_REDIS_URL": redis_url,
    }
    server = spawn_server(settings, tmp / f"server-{counters}.log")
    base = f"http://127.0.0.1:{port}"
    submits0 = len(sim.submits)
    try:
        await wait_port(port)
        await asyncio.sleep(0.5)  # the SMPP bind
        calls = f"{base}/api/calls"
        p = 30 if counters == "sqlite" else 50
        warm = await generate(tmp, calls, "closed", 1.0, p, a.concurrency)
        await drain(sim, p, warm["sent"])
        health = await generate(tmp, f"{base}/healthz", "closed", a.seconds, p + 1, a.concurrency)
        closed = await generate(tmp, calls, "closed", a.seconds, p + 2, a.concurrency)
        c_drain = await drain(sim, p + 2, closed["sent"])
        rate = 0.8 * min(TARGET, closed["rps"])
        opened = await generate(tmp, calls, "open", a.seconds, p + 3, rate=rate)
        o_drain = await drain(sim, p + 3, opened["sent"])
        await asyncio.sleep(0.5)  # the last receipts
        charged = await usage_messages(base)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    events = len(warm["sent"]) + len(closed["sent"]) + len(opened["sent"])
    print(f"\n== counters: {counters} ==")
    print(
        f"GET /healthz   closed c={a.concurrency}: {health['rps']:7.0f} req/s    "
        f"p50 {health['p50']:6.2f} ms  p99 {health['p99']:6.2f} ms"
    )
    print(
        f"POST /api/calls closed c={a.concurrency}: {closed['rps']:7.0f} events/s "
        f"({closed['rps'] / health['rps']:.0%} of /healthz)  202 p50 {closed['p50']:.2f} ms "
        f"p99 {closed['p99']:.2f} ms  errors {closed['errors']}"
    )
    print(
        f"  ringing → submit_sm at the SMSC: p50 {c_drain['p50']:.1f} ms  p99 {c_drain['p99']:.1f} ms "
        f"(backlog drained {c_drain['drain_s']:.2f} s after the load); lost {c_drain['lost']}, "
        f"double {c_drain['double']}"
    )
    print(
        f"POST /api/calls open at {rate:5.0f}/s:  {opened['rps']:7.0f} events/s  "
        f"202 p50 {opened['p50']:.2f} ms "
        f"p99 {opened['p99']:.2f} ms  errors {opened['errors']}"
    )
    print(
        f"  ringing → submit_sm at the SMSC: p50 {o_drain['p50']:.1f} ms  p99 {o_drain['p99']:.1f} ms  "
        f"max {o_drain['max']:.1f} ms; lost {o_drain['lost']}, double {o_drain['double']}"
    )
    print(
        f"  events acknowledged {events}, submits at the SMSC {len(sim.submits) - submits0}, "
        f"messages charged {charged} (double charges: {max(0, charged - events)})"
    )
    print(
        f"  target ≥ {TARGET:.0f} events/s: {'meets' if closed['rps'] >= TARGET else 'below'}; "
        f"p99 ≤ 100 ms at {rate:.0f}/s: {'meets' if o_drain['p99'] <= 100 else 'misses'}"
    )


async def main(a: argparse.Namespace) -> None:
    sim = GatewaySim(password="secret", verify=False)
    await sim.start()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(
            f"delivery bench: {a.seconds:.0f} s per phase, {os.cpu_count()} CPUs; load generator in its "
            "own process, gateway simulator (SMPP) in this one, server `python -m mingpian serve`"
        )
        kinds = a.counters.split(",")
        if "sqlite" in kinds:
            await bench("sqlite", sim, tmp, a)
        if "redis" in kinds:
            async with redis_server(tmp) as url:
                if url is None:
                    print("\n== counters: redis == skipped: redis-server not found (scripts/system-deps.sh)")
                else:
                    await bench("redis", sim, tmp, a, url)
    await sim.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generator":
        generator_main(sys.argv[2:])
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        ap.add_argument("--seconds", type=float, default=5.0)
        ap.add_argument("--concurrency", type=int, default=32)
        ap.add_argument("--counters", default="sqlite,redis")
        asyncio.run(main(ap.parse_args()))
