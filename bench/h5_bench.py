"""H5 card page benchmark: pages per second of one server process, and the page's size.

Measures, in one run:
1. Per shipped template (its sample data): the page's size in bytes (its picture excluded: a
   picture is a separate request to our media host) against the 60 KB budget, the first render
   of a page (renderer/h5.py) and the cached path (a delivery's page with the link's code and
   form token filled in), median µs on one core.
2. HTTP throughput of one `mingpian serve` process for `GET /s/{code}`: the card links of real
   deliveries (a hang-up card with a per-person field, `eta ← time`, so no two deliveries share
   a card), minted by the chain in the SMS text the gateway simulator receives; wrk cycles through
   every link after one warm-up pass (the cached card version), against the same server's
   `GET /healthz` in the same run. Each open is recorded (written in batches) and the funnel's
   displayed fact once per delivery. On SQLite, then on PostgreSQL (fsync on) with the Redis
   counters when their binaries are installed. Target: ≥ 2,000 pages/s per process.

Run: .venv/bin/python bench/h5_bench.py [--seconds 5] [--connections 32] [--links 300]
     [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import free_port, redis_server, spawn_server, wait_port, wrk  # noqa: E402

from renderer import TemplateStore  # noqa: E402
from renderer.h5 import H5Actions, card_page  # noqa: E402
from simulators.servers import PostgresCluster, pg_bin  # noqa: E402
from simulators.smsc import GatewaySim  # noqa: E402

TARGET = 2000.0
BUDGET = 60 * 1024
KEY = "mpk_bench-operator-key-0123456789abcdef"
LINE = "+8613800000001"
CODE = re.compile(r"/s/([0-9A-Za-z]{10})")
POOL = {"id": "pool", "kind": "pool", "units": 10_000_000, "price": 50000.0, "policy": "stop"}


def in_process(rounds: int) -> None:
    store = TemplateStore(ROOT / "card_templates", reload_interval=3600)
    code, token = "C" + "0" * 20, "T" + "0" * 20
    actions = H5Actions(
        link=lambda n, s: f"/s/{code}/tap/{n}",
        form=f"/s/{code}/reply#answer",
        token=token,
        ping=lambda n, s: f"/s/{code}/tap/{n}",
        image=lambda url: None,
    )
    print(
        f"{'template':22} {'page bytes':>10} {'of 60 KB':>8} {'first render µs':>16} {'cached page µs':>15}"
    )
    for name in store.names():
        t = store.get(name)
        msg = t.render(t.sample)
        html = card_page(msg, actions=actions)
        first, cached = [], []
        for _ in range(rounds):
            t0 = time.thread_time_ns()
            html = card_page(msg, actions=actions)
            first.append((time.thread_time_ns() - t0) / 1000)
            t0 = time.thread_time_ns()
            html.replace(code, "Ab3dE5gH7k").replace(token, "f" * 32)
            cached.append((time.thread_time_ns() - t0) / 1000)
        size = len(html.encode())
        print(
            f"{name:22} {size:10d} {size / BUDGET:8.1%} {statistics.median(first):16.1f} "
            f"{statistics.median(cached):15.2f}"
        )
        assert size < BUDGET, f"{name}: page of {size} bytes"


def seed(path: Path) -> None:
    sample = json.loads((ROOT / "card_templates" / "courier-hangup" / "sample.json").read_text("utf-8"))
    sample.pop("eta", None)
    now = time.time()
    doc = {
        "operator_keys": [KEY],
        "enterprises": [
            {
                "id": "bench",
                "name": "基准快递",
                "signature": "基准快递",
                "policy": {"chain": ["sms"], "links": {"card_page": True}},
                "lines": [{"number": LINE, "verified": True}],
                "cards": [
                    {
                        "id": "hangup",
                        "phase": "ended",
                        "template": "courier-hangup",
                        "data": sample,
                        "call_fields": {"eta": "time"},  # per delivery: no shared card
                    }
                ],
                "packages": [POOL | {"valid_from": now - 86400, "valid_to": now + 86400}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")


def post_call(base: str, i: int) -> None:
    body = {"call_id": f"h5b-{i}", "caller": LINE, "callee": f"+86139{i:08d}", "phase": "ended"}
    req = urllib.request.Request(
        f"{base}/api/calls",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 202)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def http(store: str, sim: GatewaySim, tmp: Path, a: argparse.Namespace, extra: dict[str, str]) -> None:
    port = free_port()
    seed(tmp / "seed.yaml")
    server = spawn_server(
        {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_DATA_DIR": str(tmp / f"var-{store}"),
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "MINGPIAN_DELIVERY_SEED": str(tmp / "seed.yaml"),
            "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{sim.smpp_port}",
            "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
            **extra,
        },
        tmp / f"server-{store}.log",
    )
    base = f"http://127.0.0.1:{port}"
    sim.submits.clear()
    try:
        await wait_port(port)
        await asyncio.sleep(0.5)  # the SMPP bind
        for i in range(a.links):
            await asyncio.to_thread(post_call, base, i)
        codes: dict[str, str] = {}
        end = time.monotonic() + 30
        while len(codes) < a.links and time.monotonic() < end:
            await asyncio.sleep(0.2)
            texts: dict[str, str] = {}
            for s in sim.submits:
                texts[s["destination"]] = texts.get(s["destination"], "") + s["text"]
            codes = {d: m.group(1) for d, t in texts.items() if (m := CODE.search(t))}
        if len(codes) < a.links:
            raise SystemExit(f"only {len(codes)} of {a.links} SMS texts carried a card link (see {tmp})")
        paths = [f"/s/{c}" for c in codes.values()]
        with urllib.request.urlopen(base + paths[0], timeout=10) as r:
            page = r.read()
            csp = r.headers["Content-Security-Policy"]
        assert b"<form" in page and "default-src 'none'" in csp
        await asyncio.to_thread(wrk, base, 1, a.connections, None, paths)  # warm-up: every page once
        health, h99 = await asyncio.to_thread(wrk, base, a.seconds, a.connections, None, ["/healthz"])
        cpu0 = cpu_seconds(server.pid)
        pages, p99 = await asyncio.to_thread(wrk, base, a.seconds, a.connections, None, paths)
        cpu = (cpu_seconds(server.pid) - cpu0) / (pages * a.seconds) * 1e6
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    verdict = "meets" if pages >= TARGET else "MISSES"
    print(f"\n== store: {store} ==  ({len(paths)} card links, wrk -c{a.connections}, {a.seconds} s each)")
    print(f"GET /healthz     {health:8.0f} req/s    p99 {h99:6.2f} ms")
    print(
        f"GET /s/{{code}}    {pages:8.0f} pages/s  p99 {p99:6.2f} ms  ({pages / health:.0%} of /healthz; "
        f"server CPU {cpu:.0f} µs/page) — {verdict} the {TARGET:.0f}/s target"
    )
    print(f"page as served: {len(page)} bytes (its picture excluded: {len(page) / BUDGET:.1%} of 60 KB)")
    errors = [ln for ln in (tmp / f"server-{store}.log").read_text("utf-8").splitlines() if "ERROR" in ln]
    print(f"server log: {len(errors)} error lines" + (f", first: {errors[0]}" if errors else ""))


async def main(a: argparse.Namespace) -> None:
    print("== pages in process (one core, median of", a.rounds, "rounds) ==")
    in_process(a.rounds)
    if not shutil.which("wrk"):
        print("\nHTTP part skipped: wrk is not installed")
        return
    sim = GatewaySim(password="secret", verify=False)
    await sim.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            stores = a.stores.split(",")
            if "sqlite" in stores:
                await http("sqlite", sim, tmp, a, {})
            if "postgres" in stores:
                bindir = pg_bin()
                async with redis_server(tmp) as redis_url:
                    if bindir is None or redis_url is None:
                        print("\n== store: postgres == skipped: PostgreSQL or redis-server not installed")
                        return
                    pg = PostgresCluster(bindir, durable=True)
                    pg.start()
                    try:
                        extra = {
                            "MINGPIAN_DATABASE_URL": pg.create_database(),
                            "MINGPIAN_DELIVERY_COUNTERS": "redis",
                            "MINGPIAN_REDIS_URL": redis_url,
                        }
                        await http("postgres", sim, tmp, a, extra)
                    finally:
                        pg.stop()
    finally:
        await sim.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--links", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--stores", default="sqlite,postgres")
    asyncio.run(main(ap.parse_args()))
