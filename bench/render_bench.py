"""Render benchmark: card templates → payloads.

Measures, in one run:
1. Full render per sample template — validate data + bind + check limits + validate the GSMA
   output schema + serialize the messageList to JSON — median and p99 in µs (one core, in process).
2. HTTP throughput of one server process for POST /api/templates/{name}/render against the same
   server's bare GET /healthz and against a bare aiohttp app in its own process whose one handler
   echoes the same body back (what aiohttp itself costs for that request and response, with none
   of the service's middleware, validation or rendering), all driven by the same load generator
   (wrk when installed, which the bench prefers because it does not compete for the Python
   interpreter; otherwise an aiohttp client in a separate process). Targets: render median
   ≤ 100 µs; HTTP render ≥ 40% of /healthz and ≥ 40% of the echo.

Run: .venv/bin/python bench/render_bench.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import _proc_stat, free_port, wrk  # noqa: E402

from infra.jsonio import dumps  # noqa: E402
from renderer import TemplateStore, to_rcs  # noqa: E402


def full_render(template, data) -> bytes:  # type: ignore[no-untyped-def]
    payload = to_rcs(template.render(data))
    return dumps(payload.message_list())  # the server's serializer


def bench_in_process(rounds: int) -> dict[str, tuple[float, float]]:
    store = TemplateStore(ROOT / "card_templates", reload_interval=3600)
    out = {}
    for name in store.names():
        t = store.get(name)
        data = t.sample
        for _ in range(200):
            full_render(t, data)
        samples = []
        gc.disable()
        for _ in range(rounds):
            # CPU time of this thread: on a shared 2-core machine, wall time would also count
            # the moments the scheduler gave the core to someone else.
            t0 = time.thread_time_ns()
            full_render(t, data)
            samples.append((time.thread_time_ns() - t0) / 1000)
        gc.enable()
        samples.sort()
        out[name] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
    return out


def start_server(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_DATA_DIR": data_dir,
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_DEMO": "off",  # the server alone, without the demo's simulators
        "MINGPIAN_RELOAD_INTERVAL": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return wait_listening(proc, port)


# A bare aiohttp app: one POST handler that answers the body it read, as JSON, and a /healthz to
# wait on. Same event loop and run_app options as `mingpian serve` (no access log).
ECHO_APP = """
import sys
from aiohttp import web

async def echo(request):
    return web.Response(body=await request.read(), content_type="application/json")

async def healthz(request):
    return web.Response(text="ok")

app = web.Application()
app.router.add_post("/echo", echo)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def wait_listening(proc: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def start_echo(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ECHO_APP, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return wait_listening(proc, port)


def aiohttp_load(url: str, seconds: int, connections: int, body: bytes | None) -> tuple[float, float]:
    code = f"""
import asyncio, time, aiohttp
async def main():
    lat = []; n = 0; stop = time.perf_counter() + {seconds}
    async with aiohttp.ClientSession() as s:
        async def worker():
            nonlocal n
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                if {body!r} is None:
                    r = await s.get({url!r})
                else:
                    r = await s.post({url!r}, data={body!r}, headers={{"Content-Type": "application/json"}})
                await r.read(); assert r.status == 200, r.status
                lat.append(time.perf_counter() - t0); n += 1
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range({connections})])
        el = time.perf_counter() - t0
    lat.sort(); print(n / el, lat[int(len(lat) * .99)] * 1000)
asyncio.run(main())
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rps, p99 = res.stdout.split()
    return float(rps), float(p99)


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    stat = _proc_stat(proc.pid)
    return stat[1] if stat else float("nan")


def measured(gen, proc, url, seconds, connections, body):  # type: ignore[no-untyped-def]
    """Requests/s, p99 (ms) and the server's CPU µs per request. The CPU figure does not depend on
    whether the server or the load generator was the bottleneck: an aiohttp client caps the bare
    app well below what that app could serve, which flatters a ratio of requests/s."""
    c0 = cpu_seconds(proc)
    rps, p99 = gen(url, seconds, connections, body)
    return rps, p99, (cpu_seconds(proc) - c0) / (rps * seconds) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--template", default="courier-hangup")
    args = ap.parse_args()

    print(
        "== full render (validate + bind + limits + GSMA schema + JSON), in process, "
        "one core, thread CPU time"
    )
    print(f"{'template':<16} {'median µs':>10} {'p99 µs':>10}")
    results = bench_in_process(args.rounds)
    for name, (med, p99) in results.items():
        print(f"{name:<16} {med:>10.1f} {p99:>10.1f}")
    worst = max(m for m, _ in results.values())
    print(f"worst median {worst:.1f} µs (target ≤ 100 µs): {'OK' if worst <= 100 else 'MISSED'}")

    gen = wrk if shutil.which("wrk") else aiohttp_load
    print(
        f"\n== HTTP, one server process, load generator: {gen.__name__}, "
        f"{args.connections} connections, {args.seconds}s each"
    )
    port, echo_port = free_port(), free_port()
    store = TemplateStore(ROOT / "card_templates")
    body = json.dumps(store.get(args.template).sample, ensure_ascii=False).encode()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(port, tmp)
        echo = start_echo(echo_port)
        try:
            base = f"http://127.0.0.1:{port}"
            echo_url = f"http://127.0.0.1:{echo_port}/echo"
            gen(f"{base}/healthz", 1, args.connections, None)  # warm-up
            gen(echo_url, 1, args.connections, body)
            h_rps, h_p99, h_cpu = measured(
                gen, server, f"{base}/healthz", args.seconds, args.connections, None
            )
            e_rps, e_p99, e_cpu = measured(gen, echo, echo_url, args.seconds, args.connections, body)
            render_url = f"{base}/api/templates/{args.template}/render"
            r_rps, r_p99, r_cpu = measured(gen, server, render_url, args.seconds, args.connections, body)
        finally:
            for proc in (server, echo):
                proc.send_signal(signal.SIGINT)
            for proc in (server, echo):
                proc.wait(10)
    ratio, echo_ratio = r_rps / h_rps, r_rps / e_rps
    print(f"/healthz          {h_rps:>9.0f} req/s   p99 {h_p99:6.2f} ms   server CPU {h_cpu:6.1f} µs/req")
    print(f"echo (bare app)   {e_rps:>9.0f} req/s   p99 {e_p99:6.2f} ms   server CPU {e_cpu:6.1f} µs/req")
    print(
        f"render {args.template:<10} {r_rps:>9.0f} req/s   p99 {r_p99:6.2f} ms   "
        f"server CPU {r_cpu:6.1f} µs/req"
    )
    print(f"render / healthz = {ratio:.1%} (target ≥ 40%): {'OK' if ratio >= 0.4 else 'MISSED'}")
    print(f"render / echo    = {echo_ratio:.1%} (target ≥ 40%): {'OK' if echo_ratio >= 0.4 else 'MISSED'}")
    cpu_ratio = e_cpu / r_cpu
    print(
        f"echo CPU / render CPU per request = {cpu_ratio:.1%}: render / echo once the server, "
        f"not the load generator, is the bottleneck (target ≥ 40%): {'OK' if cpu_ratio >= 0.4 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
