"""Console benchmark: first paint of the console's pages, a staff CSV import, and the list pages
with 100,000 staff and 10,000 lines, against one server process (`python -m mingpian serve`).

Prints:
- first paint: Chromium (Debian's, Playwright) opening /console signed in, per page: the
  browser's first-contentful-paint and the time until the page has drawn its data (the list
  filled from the API: the page's `console:<page>` performance mark), both from the
  navigation's start, median and worst of --loads fresh page loads;
- CSV import: POST of 10,000 staff rows, every row checked against the staff-card template,
  end to end (client send → 200), each run;
- list pages: GET of one page (50) of staff and of lines, first page, a deep page and a search,
  p50 / p95 over --requests requests each, with 100,000 staff and 10,000 lines in the store.

    .venv/bin/python bench/console_bench.py [--backend sqlite|postgres] [--loads 10] [--requests 50]

`--backend postgres` starts a throw-away PostgreSQL cluster and redis-server (the fleet's
backend), as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from benchlib import free_port, redis_server, spawn_server, wait_port  # noqa: E402

OPERATOR = "mpk_bench-operator-key-0123456789abcdef"
KEY = "mpk_bench-enterprise-key-0123456789abcdef"
STAFF, LINES, IMPORT_ROWS = 100_000, 10_000, 10_000
PAGES = ("lines", "staff", "cards", "keys", "reports")


def staff_csv(start: int, rows: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "name", "employee.name", "employee.title", "employee.department", "employee.mobile"])
    for i in range(start, start + rows):
        w.writerow(
            [f"e{i:06d}", f"员工{i:06d}", f"员工{i:06d}", "客户经理", f"华东{i % 40}部", f"139{i:08d}"]
        )
    return out.getvalue().encode()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@contextlib.asynccontextmanager
async def backend(kind: str, tmp: Path) -> AsyncIterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    from simulators.servers import PostgresCluster, pg_bin

    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("postgres backend: initdb not found (scripts/system-deps.sh installs postgresql)")
    cluster = PostgresCluster(bindir, durable=True)  # fsync and synchronous_commit on, as deployed
    cluster.start()
    try:
        async with redis_server(tmp) as url:
            if url is None:
                raise SystemExit("postgres backend: redis-server not found")
            yield {
                "MINGPIAN_DATABASE_URL": cluster.create_database(),
                "MINGPIAN_DELIVERY_COUNTERS": "redis",
                "MINGPIAN_REDIS_URL": url,
            }
    finally:
        cluster.stop()


async def fill(http: aiohttp.ClientSession, base: str) -> list[float]:
    """100,000 staff by CSV import (10 files of 10,000: the import figures) and 10,000 lines."""
    auth = {"Authorization": f"Bearer {KEY}"}
    imports: list[float] = []
    for n in range(STAFF // IMPORT_ROWS):
        body = staff_csv(n * IMPORT_ROWS, IMPORT_ROWS)
        t0 = time.perf_counter()
        async with http.post(
            f"{base}/api/enterprises/bench/staff-csv?template=staff-card",
            data=body,
            headers={**auth, "Content-Type": "text/csv"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        imports.append(time.perf_counter() - t0)
    sem = asyncio.Semaphore(16)

    async def line(i: int) -> None:
        async with sem:
            body = {
                "number": f"1370{i:07d}",
                "label": f"网点{i:05d}",
                "group": f"区{i % 50}",
                "staff": f"e{i:06d}",
            }
            async with http.post(f"{base}/api/enterprises/bench/lines", json=body, headers=auth) as resp:
                assert resp.status == 201, await resp.text()

    await asyncio.gather(*(line(i) for i in range(LINES)))
    return imports


async def lists(http: aiohttp.ClientSession, base: str, n: int) -> dict[str, list[float]]:
    e = f"{base}/api/enterprises/bench"
    cases = {
        "staff, first page": f"{e}/staff?limit=50&offset=0",
        "staff, page 1,000 (offset 49,950)": f"{e}/staff?limit=50&offset=49950",
        "staff, search 员工0421 (11 hits)": f"{e}/staff?limit=50&q=员工0421",
        "staff, search 华东7部 (2,500 hits)": f"{e}/staff?limit=50&q=华东7部",
        "staff, search with no hit": f"{e}/staff?limit=50&q=nobody-here",
        "lines, first page": f"{e}/lines?limit=50&offset=0",
        "lines, last page": f"{e}/lines?limit=50&offset=9950",
        "lines, search 网点0042": f"{e}/lines?limit=50&q=网点0042",
        "verification queue (operator)": f"{base}/api/lines?unverified=1&limit=50",
    }
    out: dict[str, list[float]] = {}
    for name, url in cases.items():
        times = []
        headers = {"Authorization": f"Bearer {OPERATOR if 'operator' in name else KEY}"}
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200
            times.append(time.perf_counter() - t0)
        out[name] = times
    return out


def first_paint(base: str, loads: int) -> dict[str, tuple[list[float], list[float]]]:
    from playwright.sync_api import sync_playwright

    from simulators.servers import CHROMIUM, CHROMIUM_ARGS

    out: dict[str, tuple[list[float], list[float]]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{base}/console")
        page.wait_for_selector("main[data-ready=signin]")
        page.fill("input[name=key]", KEY)
        page.press("input[name=key]", "Enter")
        page.wait_for_selector("main[data-ready=lines]")
        page.close()
        for name in PAGES:
            paints, ready = [], []
            for _ in range(loads + 1):  # the first load fills the HTTP cache, as a returning user's
                page = context.new_page()
                page.goto(f"{base}/console#/{name}")
                page.wait_for_selector(f"main[data-ready='{name}']", timeout=30_000)
                fcp, done = page.evaluate(
                    """(name) => [
                      (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0,
                      performance.getEntriesByName(`console:${name}`)[0].startTime]""",
                    name,
                )
                done /= 1000  # the browser's own clock, from the navigation's start
                page.close()
                paints.append(fcp / 1000)
                ready.append(done)
            out[name] = (paints[1:], ready[1:])
        browser.close()
    return out


def summary(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"p50 {ms(statistics.median(xs))}, p95 {ms(p95)}, max {ms(xs[-1])}"


async def main(a: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seed = {
            "operator_keys": [OPERATOR],
            "enterprises": [{"id": "bench", "name": "压测企业", "signature": "压测企业", "keys": [KEY]}],
        }
        (tmp / "seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True), "utf-8")
        async with backend(a.backend, tmp) as extra:
            port = free_port()
            settings = {
                "MINGPIAN_PORT": str(port),
                "MINGPIAN_DATA_DIR": str(tmp / "var"),
                "MINGPIAN_LOG_LEVEL": "WARNING",
                "MINGPIAN_DELIVERY_SEED": str(tmp / "seed.yaml"),
                **extra,
            }
            server = spawn_server(settings, tmp / "server.log")
            base = f"http://127.0.0.1:{port}"
            try:
                await wait_port(port)
                async with aiohttp.ClientSession() as http:
                    t0 = time.perf_counter()
                    imports = await fill(http, base)
                    took = time.perf_counter() - t0
                    print(f"filled: {STAFF:,} staff (10 imports) and {LINES:,} lines in {took:.1f} s")
                    print(
                        f"\n== CSV import, {IMPORT_ROWS:,} staff rows checked against staff-card, end to end"
                    )
                    print(
                        "   "
                        + ", ".join(f"{x:.2f} s" for x in imports)
                        + f"  (target ≤ 5 s; worst {max(imports):.2f} s)"
                    )
                    print(f"\n== list pages (50 rows), {STAFF:,} staff, {LINES:,} lines, {a.requests} each")
                    for name, times in (await lists(http, base, a.requests)).items():
                        print(f"   {name:40s} {summary(times)}")
                print(
                    f"\n== console first paint (Chromium, loopback, {a.loads} loads each after one warm-up)"
                )
                paints = await asyncio.to_thread(first_paint, base, a.loads)
                for name, (fcp, ready) in paints.items():
                    fcp_text = f"p50 {ms(statistics.median(fcp))} max {ms(max(fcp))}"
                    drawn = f"p50 {ms(statistics.median(ready))} max {ms(max(ready))}"
                    print(f"   #{name:10s} first-contentful-paint {fcp_text}; data drawn {drawn}")
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--requests", type=int, default=50)
    args: Any = parser.parse_args()
    asyncio.run(main(args))
