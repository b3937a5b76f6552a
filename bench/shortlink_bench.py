"""Short-link benchmark: `GET /s/{code}` of one server process against a bare aiohttp app.

Measures, in one run, per store (real PostgreSQL with fsync on + Redis, and the embedded SQLite
file; `--stores` picks):
1. Throughput: wrk (closed loop, `--connections`, one thread) cycling over `--links` minted
   codes of an enterprise that counts opens, against a bare aiohttp app in its own process whose
   one handler answers the same 302 for any code (what aiohttp itself costs for that request and
   response). Ratio = server / bare (target ≥ 60%); the servers' CPU µs per request beside it,
   which does not depend on which side was the bottleneck.
2. Latency at a fixed rate (`--rate`, default 5,000/s): wrk paced by its `delay()` hook (each
   connection waits connections/rate between requests, so the offered rate is fixed while the
   server keeps up), p50/p99; the achieved rate is printed (below the offered one: the server
   could not keep up, and its latency then includes queueing).
3. Guessing: a flood of random codes from one client address (wrk, its own process) while the
   paced load of (2) runs at a fifth of its rate from another address (`X-Forwarded-For` through
   a trusted proxy): the flood's answers are never a redirect (no hit), the address is refused
   (429) after its allowance, and the other client's p99 beside its p99 without the flood.
4. Opens: every redirect answered is one row of `link_opens` once the server has stopped
   (SIGTERM: the queued opens are written at close), and on PostgreSQL the transactions the
   database committed per redirect during the fixed-rate run (the opens are written in batches,
   not one write per request).

wrk comes from Debian's `wrk` package (scripts/system-deps.sh, run by `make bench`); without it
the figures of (1) and (2) come from bench/loadclient.py in its own process and (3) is skipped.

Run: .venv/bin/python bench/shortlink_bench.py [--seconds 5] [--connections 32] [--rate 5000]
     [--stores postgres,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import _proc_stat, free_port  # noqa: E402

from delivery.shortlinks import ALPHABET, ShortLinks  # noqa: E402
from delivery.store import PgDeliveryStore, SqliteDeliveryStore, Store  # noqa: E402
from mingpian.api.delivery.links import MISS_WINDOW, MISSES  # noqa: E402
from simulators.servers import PostgresCluster, RedisServer, pg_bin  # noqa: E402

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
LEGIT, FLOODER = "198.51.100.7", "203.0.113.9"
TARGET = "https://www.sf-express.com/track?no=SF1234567890123"

BARE_APP = """
import sys
from aiohttp import web

async def redirect(request):
    return web.Response(status=302, headers={"Location": sys.argv[2]})

async def healthz(request):
    return web.Response(text="ok")

app = web.Application()
app.router.add_get("/s/{code}", redirect)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


# -- the links ------------------------------------------------------------------------------------


async def mint(store: Store, n: int) -> list[str]:
    """`n` links of an enterprise that counts opens, written before the server starts."""
    await store.start()
    try:
        await store.put(
            "enterprise",
            "",
            "bench",
            {"id": "bench", "name": "压测企业", "policy": {"links": {"count_opens": True}}},
        )
        links = ShortLinks(store, "https://mp.cn/")
        codes = []
        for i in range(0, n, 500):
            async with store.tx():
                for _ in range(min(500, n - i)):
                    link = await links.mint("bench", "", "", -1, "sms", "url", TARGET, 86400.0)
                    codes.append(link.code)
            await store.durable()
        return codes
    finally:
        await store.stop()


# -- processes ------------------------------------------------------------------------------------


def wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def start_server(port: int, data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    full["MINGPIAN_DEMO"] = "off"  # the server alone, without the demo's simulators
    full.update(
        MINGPIAN_PORT=str(port),
        MINGPIAN_DATA_DIR=str(data_dir),
        MINGPIAN_LOG_LEVEL="WARNING",
        MINGPIAN_TRUSTED_PROXIES="127.0.0.1",
        MINGPIAN_DELIVERY_LINK_BASE="https://mp.cn/",
        **env,
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    wait_listening(proc, port)
    return proc


def start_bare(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port), TARGET],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(proc, port)
    return proc


def cpu(proc: subprocess.Popen[bytes]) -> float:
    stat = _proc_stat(proc.pid)
    return stat[1] if stat else float("nan")


# -- load -----------------------------------------------------------------------------------------

CYCLE_LUA = """
local codes = {}
for line in io.lines("%(codes)s") do codes[#codes + 1] = line end
local i = 0
local headers = {["User-Agent"] = "%(ua)s", ["X-Forwarded-For"] = "%(addr)s"}
request = function()
  i = i + 1
  return wrk.format("GET", "/s/" .. codes[(i %% #codes) + 1], headers)
end
"""
FLOOD_LUA = """
local chars = "%(alphabet)s"
local headers = {["X-Forwarded-For"] = "%(addr)s"}
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() s302, s404, s429, other = 0, 0, 0, 0; math.randomseed(os.time()) end
request = function()
  local t = {}
  for k = 1, 10 do local r = math.random(1, 62); t[k] = chars:sub(r, r) end
  return wrk.format("GET", "/s/" .. table.concat(t), headers)
end
response = function(status, headers, body)
  if status == 302 then s302 = s302 + 1 elseif status == 404 then s404 = s404 + 1
  elseif status == 429 then s429 = s429 + 1 else other = other + 1 end
end
"""
FLOOD_DONE_LUA = """
done = function(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s302"); b = b + t:get("s404"); c = c + t:get("s429"); d = d + t:get("other")
  end
  io.write(string.format("STATUS %d %d %d %d\\n", a, b, c, d))
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
"""
PACE_LUA = """
delay = function() return %(ms)f end
"""
DONE_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
"""


def wrk_start(
    url: str, script: str, seconds: float, connections: int, done: str = DONE_LUA
) -> subprocess.Popen[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + done)
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", f.name, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wrk_result(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, err = proc.communicate()
    statuses = next((ln.split()[1:] for ln in out.splitlines() if ln.startswith("STATUS")), None)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out} {err}")
    _, n, secs, p50, p99, bad = line.split()
    result = {
        "requests": int(n),
        "rps": int(n) / float(secs),
        "p50": float(p50),
        "p99": float(p99),
        "bad": int(bad),
    }
    if statuses is not None:  # the flood's answers by status
        for name, count in zip(("302", "404", "429", "other"), statuses, strict=True):
            result[name] = int(count)
    return result


def pyload(
    port: int, codes: list[str], seconds: float, connections: int, rate: float = 0
) -> dict[str, float]:
    """bench/loadclient.py in its own process (when wrk is missing): closed loop, or paced."""
    code = f"""
import asyncio, sys, time
sys.path.insert(0, {str(ROOT / "bench")!r})
from loadclient import KeepAlive
codes = {codes!r}
async def main():
    c = KeepAlive("127.0.0.1", {port})
    lat, n, stop = [], 0, time.perf_counter() + {seconds}
    async def worker(w):
        nonlocal n
        i = w
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            req = c.prepare("GET", "/s/" + codes[i % len(codes)], {{"User-Agent": {UA!r}}})
            status, _ = await c.send(req)
            assert status == 302, status
            lat.append(time.perf_counter() - t0); n += 1; i += {connections}
            if {rate}:
                await asyncio.sleep(max(0.0, {connections} / {rate} - (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    await asyncio.gather(*[worker(w) for w in range({connections})])
    el = time.perf_counter() - t0
    lat.sort()
    print(n, el, lat[len(lat) // 2] * 1000, lat[int(len(lat) * .99)] * 1000)
asyncio.run(main())
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, el, p50, p99 = res.stdout.split()
    return {"requests": int(n), "rps": int(n) / float(el), "p50": float(p50), "p99": float(p99), "bad": 0}


PACED = """
import asyncio, sys, time
sys.path.insert(0, %(bench)r)
from loadclient import KeepAlive, HttpError
codes = open(%(codes)r).read().split()
async def main():
    c = KeepAlive("127.0.0.1", %(port)d, limit=512)
    paths = ["/healthz"] if %(healthz)r else ["/s/" + code for code in codes]
    reqs = [c.prepare("GET", path, {"User-Agent": %(ua)r, "X-Forwarded-For": %(addr)r}) for path in paths]
    ok = 200 if %(healthz)r else 302
    rate, n, workers = %(rate)f, int(%(rate)f * %(seconds)f), 128
    lat, bad = [], 0
    t0 = time.perf_counter() + 0.05
    async def worker(k):
        # request i is due at t0 + i / rate; this worker sends i = k, k + workers, ... each when
        # due (or at once when late: the wait then counts in its latency)
        nonlocal bad
        for i in range(k, n, workers):
            at = t0 + i / rate
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                status, _ = await c.send(reqs[i %% len(reqs)])
            except HttpError:
                status = 0
            if status != ok:
                bad += 1
            lat.append(time.perf_counter() - at)
    await asyncio.gather(*(worker(k) for k in range(workers)))
    el = time.perf_counter() - t0
    lat.sort()
    print("RESULT", n, el, lat[len(lat) // 2] * 1000, lat[int(len(lat) * .99)] * 1000, bad)
asyncio.run(main())
"""


class Load:
    def __init__(self, port: int, codes: list[str], codes_file: Path) -> None:
        self.port, self.codes, self.codes_file = port, codes, codes_file
        self.wrk = shutil.which("wrk") is not None

    def run(self, seconds: float, connections: int) -> dict[str, float]:
        """Closed loop: as fast as the server answers, `connections` at a time."""
        if not self.wrk:
            return pyload(self.port, self.codes, seconds, connections)
        script = CYCLE_LUA % {"codes": self.codes_file, "ua": UA, "addr": LEGIT}
        return wrk_result(wrk_start(f"http://127.0.0.1:{self.port}", script, seconds, connections))

    def paced(
        self, seconds: float, rate: float, addr: str = LEGIT, healthz: bool = False
    ) -> subprocess.Popen[str]:
        """A fixed rate: request i is due at i / rate, sent by one of 128 connections when due (or
        as soon as its connection is free), its latency counted from when it was due, so a server
        that falls behind shows it; in its own process (bench/loadclient.py)."""
        code = PACED % {
            "bench": str(ROOT / "bench"),
            "codes": str(self.codes_file),
            "port": self.port,
            "ua": UA,
            "addr": addr,
            "healthz": healthz,
            "rate": rate,
            "seconds": seconds,
        }
        return subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


# -- one store ------------------------------------------------------------------------------------


def xacts(url: str) -> int:
    import asyncpg

    async def read() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(read())


def opens_rows(kind: str, where: str) -> int:
    if kind == "sqlite":
        with sqlite3.connect(where) as db:
            return int(db.execute("SELECT count(*) FROM link_opens").fetchone()[0])
    import asyncpg

    async def read() -> int:
        conn = await asyncpg.connect(where)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM link_opens"))
        finally:
            await conn.close()

    return asyncio.run(read())


def bench_store(
    kind: str, args: argparse.Namespace, tmp: Path, bare_port: int, bare: subprocess.Popen[bytes]
) -> None:
    data = tmp / kind
    data.mkdir()
    env: dict[str, str] = {}
    cluster = redis = None
    try:
        if kind == "postgres":
            bindir = pg_bin()
            if bindir is None or shutil.which("redis-server") is None:
                print("postgres: skipped (PostgreSQL or redis-server not installed: scripts/system-deps.sh)")
                return
            cluster = PostgresCluster(bindir, durable=True)
            cluster.start()
            url = cluster.create_database()
            redis = RedisServer(tmp / "redis")
            redis.start()
            env = {
                "MINGPIAN_DATABASE_URL": url,
                "MINGPIAN_DELIVERY_COUNTERS": "redis",
                "MINGPIAN_REDIS_URL": redis.url,
            }
            codes = asyncio.run(mint(PgDeliveryStore(url), args.links))
            where = url
        else:
            where = str(data / "delivery.sqlite3")
            codes = asyncio.run(mint(SqliteDeliveryStore(Path(where)), args.links))
        codes_file = tmp / f"{kind}-codes.txt"
        codes_file.write_text("\n".join(codes) + "\n")
        port = free_port()
        server = start_server(port, data, env, tmp / f"{kind}.log")
        label = "PostgreSQL (fsync on) + Redis" if kind == "postgres" else "SQLite (one file, WAL)"
        print(f"\n== {label}: {len(codes)} links of an enterprise that counts opens")
        load, bare_load = Load(port, codes, codes_file), Load(bare_port, codes, codes_file)
        served = 0  # redirects the load generators saw answered (each an open)
        in_flight = 0  # requests a run may leave unanswered at its end (answered after: opens too)
        try:
            served += load.run(2, args.connections)["requests"]  # warm-up: codes into the cache of hits
            in_flight += args.connections
            c0 = cpu(server)
            ours = load.run(args.seconds, args.connections)
            served += ours["requests"]
            in_flight += args.connections
            ours_cpu = (cpu(server) - c0) / ours["requests"] * 1e6
            b0 = cpu(bare)
            theirs = bare_load.run(args.seconds, args.connections)
            bare_cpu = (cpu(bare) - b0) / theirs["requests"] * 1e6
            ratio = ours["rps"] / theirs["rps"]
            h0 = cpu(server)  # the same server's /healthz: what every route pays (middleware, metrics)
            healthz = (
                wrk_result(wrk_start(f"http://127.0.0.1:{port}/healthz", "", args.seconds, args.connections))
                if load.wrk
                else None
            )
            healthz_cpu = (cpu(server) - h0) / healthz["requests"] * 1e6 if healthz else float("nan")
            gen = "wrk" if load.wrk else "bench/loadclient.py"
            print(f"throughput ({gen}, {args.connections} connections, {args.seconds}s):")
            print(
                f"  /s/{{code}} 302 + open counted  {ours['rps']:8.0f}/s  p99 {ours['p99']:6.2f} ms  "
                f"{ours_cpu:5.0f} µs CPU/request"
            )
            print(
                f"  bare aiohttp 302              {theirs['rps']:8.0f}/s  p99 {theirs['p99']:6.2f} ms  "
                f"{bare_cpu:5.0f} µs CPU/request"
            )
            if healthz is not None:
                print(
                    f"  its /healthz                  {healthz['rps']:8.0f}/s  p99 {healthz['p99']:6.2f} ms  "
                    f"{healthz_cpu:5.0f} µs CPU/request"
                )
            print(
                f"  ratio {ratio:.0%} of the bare app (target ≥ 60%); by CPU per request "
                f"{bare_cpu / ours_cpu:.0%}"
            )
            x0 = xacts(where) if kind == "postgres" else 0
            paced = wrk_result(load.paced(args.seconds, args.rate))
            if kind == "postgres":
                time.sleep(1.5)  # backends report their counts to the statistics at least every second
            x1 = xacts(where) if kind == "postgres" else 0
            bare_paced = wrk_result(bare_load.paced(args.seconds, args.rate))
            healthz_paced = wrk_result(load.paced(args.seconds, args.rate, healthz=True))
            served += paced["requests"]
            in_flight += 0  # the paced load waits for every answer
            print(f"fixed rate {args.rate:.0f}/s offered (open loop, latency from when each was due):")
            for name, r in (
                ("/s/{code}", paced),
                ("bare aiohttp", bare_paced),
                ("its /healthz", healthz_paced),
            ):
                print(
                    f"  {name:<14} achieved {r['rps']:6.0f}/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:7.2f} ms"
                )
            if kind == "postgres":
                print(
                    f"  PostgreSQL committed {x1 - x0} transactions for {paced['requests']} redirects "
                    f"({(x1 - x0) / paced['requests']:.3f} per redirect; opens written in batches)"
                )
            if load.wrk:
                flood_rate = args.rate / 5
                legit = load.paced(args.flood_seconds, flood_rate)
                flood = wrk_start(
                    f"http://127.0.0.1:{port}",
                    FLOOD_LUA % {"alphabet": ALPHABET, "addr": FLOODER},
                    args.flood_seconds,
                    args.connections,
                    FLOOD_DONE_LUA,
                )
                f = wrk_result(flood)
                good = wrk_result(legit)
                quiet = wrk_result(load.paced(args.seconds, flood_rate))
                served += good["requests"] + quiet["requests"]
                allowed = MISSES * math.ceil(args.flood_seconds / MISS_WINDOW)  # one allowance per window
                print(
                    f"guessing: {f['requests']} random codes from one address in {args.flood_seconds:.0f}s "
                    f"({f['rps']:.0f}/s): {f['302']} redirects, {f['404']} answered 404 "
                    f"(at most {allowed} allowed: {MISSES} a minute), {f['429']} refused "
                    f"429, {f['other']} other"
                )
                print(
                    f"  another client at {flood_rate:.0f}/s meanwhile: p99 {good['p99']:.2f} ms "
                    f"({good['rps']:.0f}/s), without the flood p99 {quiet['p99']:.2f} ms"
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        rows = opens_rows(kind, where)
        ok = served <= rows <= served + in_flight
        print(
            f"opens: {rows} rows of link_opens after SIGTERM for {served} redirects the load generators "
            f"saw answered (+ at most {in_flight} answered after they stopped): "
            f"{'none lost' if ok else 'MISMATCH'}"
        )
    finally:
        if redis is not None:
            redis.stop()
        if cluster is not None:
            cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--flood-seconds", type=float, default=10)
    ap.add_argument("--links", type=int, default=5000)
    ap.add_argument("--stores", default="postgres,sqlite")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not installed (Debian's wrk: scripts/system-deps.sh); using bench/loadclient.py")
    tmp = Path(tempfile.mkdtemp(prefix="mingpian-links-"))
    bare_port = free_port()
    bare = start_bare(bare_port)
    try:
        for kind in args.stores.split(","):
            bench_store(kind.strip(), args, tmp, bare_port, bare)
    finally:
        bare.terminate()
        bare.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
