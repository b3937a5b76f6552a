"""Chatbot benchmark: postback → reply turns through one server process.

One run measures, against the same server process and with the same load generator:
1. bare GET /healthz, closed loop (fixed concurrency): the HTTP ceiling of this machine;
2. webhook turns (CSP messageNotification with a postback → tracking card reply), closed loop:
   maximum turns/s, p50/p99 latency;
3. webhook turns, open loop at 80% of the 2,000 turns/s target (or of the measured maximum,
   if lower), latency measured from each request's scheduled start (no coordinated omission);
for the SQLite store, then the Redis store (a private redis-server). Each turn is a fresh
platform message ID; the MaaP simulator (this process) receives every reply through the outbox
and counts duplicates and losses over every acknowledged message.

The load generator runs in its own process (aiohttp client); the server is `python -m mingpian
serve`. Run: .venv/bin/python bench/chatbot_bench.py [--seconds 5] [--concurrency 32]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from benchlib import free_port, redis_server, spawn_server, wait_port  # noqa: E402

from chatbot.auth import csp_signature_headers  # noqa: E402
from simulators.maap import Simulator  # noqa: E402
from simulators.seeds import CHATBOT  # noqa: E402  (the courier bot of the sample enterprise sf)

# Each turn is signed as a CT/CU platform signs it (a fresh timestamp and nonce per request), so
# the run includes what every such callback costs: the signature check and the store's nonce
# record that refuses a replay.
CSP_TOKEN = "bench-csp-token"
TARGET = 2000.0


# ---- load generator (runs in a child process) -------------------------------------------------


def tap_body(prefix: str, i: int, distinct: bool = False) -> bytes:
    """A user's tap on "查询物流" (message ID `prefix-i`, contribution ID `c-prefix-i`), as the
    platform posts it to the bot's webhook."""
    mid = f"{prefix}-{i}"
    waybill = f"SF{i:013d}" if distinct else "SF1234567890123"
    tap = json.dumps(
        {"response": {"reply": {"displayText": "查询物流", "postback": {"data": f"track:{waybill}"}}}},
        ensure_ascii=False,
    )
    return json.dumps(
        {
            "messageId": mid,
            "dateTime": "2026-11-25T10:00:00.000+08:00",
            "senderAddress": f"tel:+86138{i % 5000:08d}",
            "destinationAddress": CHATBOT,
            "conversationId": f"conv-{i % 5000}",
            "contributionId": f"c-{mid}",
            "messageList": [
                {
                    "contentType": "application/vnd.gsma.botsuggestion.response.v1.0+json",
                    "contentEncoding": "utf8",
                    "contentText": tap,
                }
            ],
        },
        ensure_ascii=False,
    ).encode()


def hook_url(base: str) -> str:
    """The courier bot's CT/CU message webhook on the server at `base`."""
    return f"{base}/maap/courier/messageNotification/{CHATBOT}/messages"


def signed_headers(nonce: str) -> dict[str, str]:
    """Headers of one webhook call, signed with a fresh timestamp and `nonce`."""
    return {"Content-Type": "application/json", **csp_signature_headers(CSP_TOKEN, nonce=nonce)}


async def start_simulator() -> tuple[Simulator, web.AppRunner, int]:
    """The MaaP simulator served in this process on a free port: (simulator, its runner, port)."""
    sim = Simulator(app_id="bench-app", app_key="bench-key")
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return sim, runner, port


def maap_settings(sim: Simulator, port: int) -> dict[str, str]:
    """The settings that send a server's replies to the simulator on `port` and check the
    signature of its webhook calls."""
    return {
        "MINGPIAN_MAAP_URL": f"http://127.0.0.1:{port}",
        "MINGPIAN_MAAP_APP_ID": sim.app_id,
        "MINGPIAN_MAAP_APP_KEY": sim.app_key,
        "MINGPIAN_WEBHOOK_CSP_TOKEN": CSP_TOKEN,
    }


async def _generate(a: argparse.Namespace) -> dict[str, Any]:
    webhook = a.url.endswith("/messages")
    lat: list[float] = []
    acked: list[int] = []
    worst: list[tuple[float, float]] = []  # (latency, when it started, s into the run)
    t0 = time.perf_counter()
    errors = 0
    # Open loop: at most 64 connections (queued requests still count their wait from the
    # scheduled start), so an overload is not made worse by a storm of new connections.
    conn = aiohttp.TCPConnector(limit=a.concurrency if a.mode == "closed" else 64)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def one(i: int, start: float) -> None:
            nonlocal errors
            try:
                if webhook:
                    body = tap_body(a.prefix, i, a.distinct)
                    async with session.post(a.url, data=body, headers=signed_headers(f"{a.prefix}-{i}")) as r:
                        await r.read()
                        ok = r.status == 200
                else:
                    async with session.get(a.url) as r:
                        await r.read()
                        ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - start)
                acked.append(i)
                worst.append((lat[-1], start - t0))
            else:
                errors += 1

        counter = iter(range(10**9))
        t0 = time.perf_counter()
        end = t0 + a.seconds
        if a.mode == "closed":

            async def worker() -> None:
                while time.perf_counter() < end:
                    await one(next(counter), time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        else:
            tasks = set()
            n = int(a.rate * a.seconds)
            for i in range(n):
                due = t0 + i / a.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t = asyncio.ensure_future(one(i, due))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "ok": len(lat),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(lat) / elapsed,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": lat[-1] * 1000 if lat else float("nan"),
        "acked": acked,
        "worst": sorted(worst, reverse=True)[:5],
    }


def generator_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--mode", choices=["closed", "open"])
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--prefix", default="b")
    ap.add_argument("--out")
    ap.add_argument("--distinct", action="store_true")
    a = ap.parse_args(argv)
    result = asyncio.run(_generate(a))
    Path(a.out).write_text(json.dumps(result))


# ---- orchestration ------------------------------------------------------------------------


# --pin: the server gets one CPU to itself and the load side (generator, simulator, redis-server)
# the others. Off by default: on a 2-CPU machine the load side then starves on its one CPU
# (measured: /healthz fell from ~11k to ~3k req/s); useful with 4+ CPUs.
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPU: list[int] = []
LOAD_CPUS: list[int] = []


def pin(pid: int, cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(pid, cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): the server's cost per turn,
    which — unlike wall-clock throughput — does not depend on what else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_generator(
    tmp: Path,
    url: str,
    mode: str,
    seconds: float,
    prefix: str,
    concurrency: int = 32,
    rate: float = 0,
    distinct: bool = False,
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
        prefix,
        "--out",
        str(out),
        *(["--distinct"] if distinct else []),
    )
    pin(proc.pid, LOAD_CPUS)
    await proc.wait()
    return json.loads(out.read_text())


async def drain(sim: Simulator, prefix: str, acked: list[int], timeout: float = 60) -> dict[str, Any]:
    """Wait for a reply to every acknowledged turn; count losses and duplicates."""
    want = {f"c-{prefix}-{i}" for i in acked}
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want <= sim.replies_to.keys():
        await asyncio.sleep(0.05)
    mine = {k: v for k, v in sim.replies_to.items() if k.startswith(f"c-{prefix}-")}
    dups = sum(len(v) - 1 for v in mine.values() if len(v) > 1)
    return {
        "lost": len(want - mine.keys()),
        "duplicates": dups,
        "replies": sum(len(v) for v in mine.values()),
        "drain_s": time.perf_counter() - t0,
    }


async def bench_store(
    store: str, sim: Simulator, sim_port: int, tmp: Path, a: argparse.Namespace, redis_url: str = ""
) -> None:
    port = free_port()
    settings = {
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_DATA_DIR": str(tmp / f"var-{store}"),
        "MINGPIAN_STORE": store,
        "MINGPIAN_REDIS_URL": redis_url,
        "MINGPIAN_LOG_LEVEL": "WARNING",
        **maap_settings(sim, sim_port),
        "MINGPIAN_OUTBOX_CONCURRENCY": "128",
    }
    server = spawn_server(settings, tmp / f"server-{store}.log")
    pin(server.pid, SERVER_CPU)
    try:
        await wait_port(port)
        base = f"http://127.0.0.1:{port}"
        hook = hook_url(base)
        warm = await run_generator(tmp, hook, "closed", 1.0, f"{store}-warm", a.concurrency)
        await drain(sim, f"{store}-warm", warm["acked"])
        cpu0 = cpu_seconds(server.pid)
        health = await run_generator(
            tmp, f"{base}/healthz", "closed", a.seconds, f"{store}-hz", a.concurrency
        )
        cpu1 = cpu_seconds(server.pid)
        closed = await run_generator(tmp, hook, "closed", a.seconds, f"{store}-max", a.concurrency)
        c_drain = await drain(sim, f"{store}-max", closed["acked"])
        cpu2 = cpu_seconds(server.pid)
        distinct = await run_generator(
            tmp, hook, "closed", a.seconds, f"{store}-dst", a.concurrency, distinct=True
        )
        d_drain = await drain(sim, f"{store}-dst", distinct["acked"])
        cpu3 = cpu_seconds(server.pid)
        # Server CPU per request, replies delivered included (the drain is inside the window).
        hz_us = (cpu1 - cpu0) / max(1, health["ok"]) * 1e6
        turn_us = (cpu2 - cpu1) / max(1, closed["ok"]) * 1e6
        dst_us = (cpu3 - cpu2) / max(1, distinct["ok"]) * 1e6
        rate = a.open_rate or 0.8 * min(TARGET, closed["rps"])
        opened = await run_generator(tmp, hook, "open", a.seconds, f"{store}-open", rate=rate)
        o_drain = await drain(sim, f"{store}-open", opened["acked"])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    print(f"\n== store: {store} ==")
    print(
        f"GET /healthz      closed c={a.concurrency}: {health['rps']:8.0f} req/s   "
        f"p50 {health['p50']:6.2f} ms  p99 {health['p99']:6.2f} ms"
    )
    print(
        f"webhook turns     closed c={a.concurrency}: {closed['rps']:8.0f} turns/s "
        f"p50 {closed['p50']:6.2f} ms  p99 {closed['p99']:6.2f} ms  "
        f"({closed['rps'] / health['rps']:.0%} of /healthz; errors {closed['errors']})"
    )
    print(
        f"  server CPU per request: /healthz {hz_us:.0f} µs, turn incl. its reply's delivery "
        f"{turn_us:.0f} µs → {1e6 / turn_us:.0f} turns/s per core; every reply rendered {dst_us:.0f} µs"
    )
    print(
        f"  replies drained: {c_drain['replies']} in {c_drain['drain_s']:.2f} s after the load; "
        f"lost {c_drain['lost']}, duplicates {c_drain['duplicates']}"
    )
    print(
        f"  every reply rendered (a distinct parcel per turn, render cache misses): "
        f"{distinct['rps']:.0f} turns/s p50 {distinct['p50']:.2f} ms p99 {distinct['p99']:.2f} ms; "
        f"lost {d_drain['lost']}, duplicates {d_drain['duplicates']}"
    )
    print(
        f"webhook turns     open at {rate:6.0f}/s:    {opened['rps']:8.0f} turns/s "
        f"p50 {opened['p50']:6.2f} ms  p99 {opened['p99']:6.2f} ms  max {opened['max']:.1f} ms "
        f"(errors {opened['errors']})"
    )
    print(
        f"  replies drained: {o_drain['replies']} in {o_drain['drain_s']:.2f} s after the load; "
        f"lost {o_drain['lost']}, duplicates {o_drain['duplicates']}"
    )
    verdict = "meets" if closed["rps"] >= TARGET else "below"
    if store == "sqlite":
        print(
            f"  target ≥ {TARGET:.0f} turns/s: {verdict}; p99 ≤ 50 ms at {rate:.0f}/s: "
            f"{'meets' if opened['p99'] <= 50 else 'misses'}"
        )


async def main(a: argparse.Namespace) -> None:
    if a.pin and len(CPUS) >= 2:
        SERVER_CPU[:] = CPUS[:1]
        LOAD_CPUS[:] = CPUS[1:]
    pin(os.getpid(), LOAD_CPUS)
    sim, runner, sim_port = await start_simulator()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(
            f"chatbot bench: {a.seconds:.0f} s per phase, {os.cpu_count()} CPUs (server pinned to "
            f"{SERVER_CPU or 'any'}, load side to {LOAD_CPUS or 'any'}), load generator in its own "
            "process, MaaP simulator in this one"
        )
        stores = a.stores.split(",")
        if "sqlite" in stores:
            await bench_store("sqlite", sim, sim_port, tmp, a)
        if "redis" in stores:
            async with redis_server(tmp, lambda pid: pin(pid, LOAD_CPUS)) as url:
                if url is None:
                    print("\n== store: redis == skipped: redis-server not found (scripts/system-deps.sh)")
                else:
                    await bench_store("redis", sim, sim_port, tmp, a, url)
        st = sim.stats()
        print(
            f"\nsimulator totals: {st['replies']} replies, {st['resendsDropped']} resends dropped by "
            f"message ID, {st['rejected']} rejected, {st['tokenRequests']} token requests"
        )
    await runner.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generator":
        generator_main(sys.argv[2:])
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        ap.add_argument("--seconds", type=float, default=5.0)
        ap.add_argument("--concurrency", type=int, default=32)
        ap.add_argument("--stores", default="sqlite,redis")
        ap.add_argument("--pin", action="store_true", help="server on one CPU, load side on the others")
        ap.add_argument(
            "--open-rate",
            type=float,
            default=0.0,
            help="open-loop rate (default: 80%% of the 2,000/s target, or of the measured max)",
        )
        asyncio.run(main(ap.parse_args()))
