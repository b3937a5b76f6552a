"""Staff CSV export at its bound: one server process (`python -m mingpian serve`, SQLite) with
--rows staff of one field each plus two members that hold the most field columns an import
allows (`MAX_COLUMNS`), so every exported row carries every column: the widest export the import
limits let an enterprise build. Then `GET …/staff-csv` is read to its end while a second client
asks `/healthz` over and over.

Prints: the import of a file wider than the limit (refused); the export's size and time; the
server's resident memory above its idle level before the export (peak, sampled every 10 ms from
/proc); /healthz p50 / p99 / max during the exports (--runs of them, one after another).

    .venv/bin/python bench/staff_csv_bench.py [--rows 50000] [--runs 3]

Departs from a deployment: the server runs with its embedded defaults on one host (SQLite, one
process, no proxy in front), and this script's clients share the machine's two cores with it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from benchlib import free_port, spawn_server, wait_port  # noqa: E402

from delivery.staffcsv import MAX_COLUMNS  # noqa: E402

KEY = "mpk_bench-enterprise-key-0123456789abcdef"
URL = "/api/enterprises/bench/staff-csv"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "text/csv"}
PER_IMPORT = 10_000


def rss(pid: int) -> int:
    """Resident set size of a process, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def post(http: aiohttp.ClientSession, base: str, text: str) -> int:
    async with http.post(base + URL, data=text.encode(), headers=HEADERS) as r:
        await r.read()
        return r.status


async def fill(http: aiohttp.ClientSession, base: str, rows: int) -> None:
    wide = ",".join(f"f{i}" for i in range(20_000))
    status = await post(http, base, f"id,name,{wide}\r\nw1,甲,{','.join('x' * 20_000)}\r\n")
    print(f"import of 2 rows × 20,000 columns: HTTP {status} (refused: at most {MAX_COLUMNS} columns)")
    cols = ",".join(f"f{i}" for i in range(MAX_COLUMNS))
    cells = ",".join("值" for _ in range(MAX_COLUMNS))
    assert await post(http, base, f"id,name,{cols}\r\nw1,甲,{cells}\r\nw2,乙,{cells}\r\n") == 200
    took = []
    for start in range(0, rows, PER_IMPORT):
        n = min(PER_IMPORT, rows - start)
        text = "id,name,f0\r\n" + "".join(f"s{i:06d},员工{i},{i}\r\n" for i in range(start, start + n))
        t = time.perf_counter()
        assert await post(http, base, text) == 200
        took.append(time.perf_counter() - t)
    print(
        f"imports of {PER_IMPORT:,} rows each (the enterprise's other staff read for its column bound): "
        + ", ".join(f"{x:.2f}" for x in took)
        + " s"
    )


async def health(base: str, stop: asyncio.Event, out: list[float]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            t = time.perf_counter()
            async with http.get(base + "/healthz") as r:
                await r.read()
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.005)


async def sample(pid: int, stop: asyncio.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(rss(pid))
        await asyncio.sleep(0.01)


async def export(base: str) -> tuple[int, float]:
    size = 0
    t = time.perf_counter()
    async with aiohttp.ClientSession() as http, http.get(base + URL, headers=HEADERS) as r:
        assert r.status == 200, r.status
        async for chunk in r.content.iter_chunked(1 << 16):
            size += len(chunk)
    return size, time.perf_counter() - t


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def main(a: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seed = {"enterprises": [{"id": "bench", "name": "压测企业", "signature": "压测企业", "keys": [KEY]}]}
        (tmp / "seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True), "utf-8")
        port = free_port()
        settings = {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_DATA_DIR": str(tmp / "var"),
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_DELIVERY_SEED": str(tmp / "seed.yaml"),
        }
        server = spawn_server(settings, tmp / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_port(port)
            start = rss(server.pid)
            async with aiohttp.ClientSession() as http:
                await fill(http, base, a.rows)
            await asyncio.sleep(1)
            idle = rss(server.pid)
            quiet: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(health(base, stop, quiet))
            await asyncio.sleep(2)
            stop.set()
            await probe
            stop = asyncio.Event()
            lat: list[float] = []
            mem: list[int] = []
            tasks = [
                asyncio.create_task(health(base, stop, lat)),
                asyncio.create_task(sample(server.pid, stop, mem)),
            ]
            runs = [await export(base) for _ in range(a.runs)]
            size, took = runs[0][0], statistics.median(t for _, t in runs)
            stop.set()
            await asyncio.gather(*tasks)
            print(f"\n== export of {a.rows + 3:,} staff, {MAX_COLUMNS} field columns each row (SQLite)")
            print(f"   size {size / 1e6:.1f} MB, time {took:.2f} s (median of {a.runs}: "
                  + ", ".join(f"{t:.2f}" for _, t in runs) + ")")  # fmt: skip
            print(
                f"   server RSS: idle {idle / 1e6:.0f} MB (at start {start / 1e6:.0f} MB; imports grew it), "
                f"peak above idle {(max(mem) - idle) / 1e6:.1f} MB"
            )
            print(
                f"   /healthz during it ({len(lat)} requests): p50 {statistics.median(lat) * 1000:.1f} ms, "
                f"p99 {pct(lat, 0.99):.1f} ms, max {max(lat) * 1000:.1f} ms"
            )
            print(f"   /healthz idle ({len(quiet)} requests): p50 {statistics.median(quiet) * 1000:.1f} ms, "
                  f"p99 {pct(quiet, 0.99):.1f} ms")  # fmt: skip
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="exports read one after another")
    args: Any = parser.parse_args()
    asyncio.run(main(args))
