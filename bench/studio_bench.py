"""Studio benchmark: the browser studio.

Measures, in one run, in headless Debian Chromium (Playwright) against a real server on loopback:
1. First contentful paint of the gallery and of a template page, against the FCP of a trivial
   page (one paragraph of Chinese) in the same browser: the baseline. Target: < 1 s.
2. Live reload: time from saving card.yaml (scratch copy) to the updated card on the phone,
   against the time from typing in the form to the updated card (the form's 200 ms debounce and
   one render round trip, the baseline). Target: p50 <= 500 ms.

Run: .venv/bin/python bench/studio_bench.py [--saves 8]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mingpian.app import create_app  # noqa: E402
from mingpian.settings import Settings  # noqa: E402
from simulators.servers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

FCP = """() => new Promise(done => {
  const hit = performance.getEntriesByName('first-contentful-paint')[0];
  if (hit) return done(hit.startTime);
  new PerformanceObserver(l => done(l.getEntries()[0].startTime)).observe({type: 'paint', buffered: true});
})"""
TITLE = "#phone-rcs .card-title"
HOOK = "{{ nickname }}{% if"  # where personal-show's card.yaml title gets a version mark


def shows(text: str) -> str:
    return f"() => (document.querySelector('{TITLE}')?.textContent || '').includes('{text}')"


def serve(settings: Settings, box: dict[str, object]) -> None:
    async def main() -> None:
        runner = web.AppRunner(create_app(settings), shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop = asyncio.Event()
        box.update(port=runner.addresses[0][1], loop=asyncio.get_running_loop(), stop=stop)
        box["ready"].set()  # type: ignore[attr-defined]
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def median_ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=8)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    shutil.copytree(ROOT / "card_templates", tmp / "card_templates")
    settings = Settings(
        template_dir=tmp / "card_templates", data_dir=tmp / "var", log_level="WARNING", log_format="text"
    )
    box: dict[str, object] = {"ready": threading.Event()}
    thread = threading.Thread(target=serve, args=(settings, box), daemon=True)
    thread.start()
    box["ready"].wait(30)  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{box['port']}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            fcp: dict[str, list[float]] = {"baseline": [], "gallery": [], "template": []}
            for _ in range(args.loads):
                for key, url in (("gallery", base + "/"), ("template", base + "/t/courier-hangup")):
                    ctx = browser.new_context()
                    page = ctx.new_page()
                    page.goto(url)
                    fcp[key].append(page.evaluate(FCP) / 1000)
                    ctx.close()
                ctx = browser.new_context()
                page = ctx.new_page()
                page.goto("data:text/html;charset=utf-8,<meta charset=utf-8><p>名片</p>")
                fcp["baseline"].append(page.evaluate(FCP) / 1000)
                ctx.close()

            page = browser.new_page()
            page.goto(base + "/t/personal-show")
            page.wait_for_selector("main[data-ready=true]")
            page.wait_for_function("() => document.querySelector('main').dataset.live === 'on'")
            typed: list[float] = []
            saved: list[float] = []
            card = tmp / "card_templates" / "personal-show" / "card.yaml"
            source = card.read_text("utf-8")
            nick = page.locator('[data-path="$.nickname"] input')
            for i in range(args.saves):
                t0 = time.perf_counter()
                nick.fill(f"小蓝{i}")
                page.wait_for_function(shows(f"小蓝{i}"), polling="raf")
                typed.append(time.perf_counter() - t0)
                time.sleep(0.3)
                mark = f"第{i}版"
                t0 = time.perf_counter()
                card.write_text(source.replace(HOOK, mark + HOOK, 1), "utf-8")
                page.wait_for_function(shows(mark), polling="raf", timeout=10_000)
                saved.append(time.perf_counter() - t0)
            card.write_text(source, "utf-8")
            browser.close()
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)
        shutil.rmtree(tmp, ignore_errors=True)

    b = statistics.median(fcp["baseline"])
    print(f"first contentful paint, median of {args.loads} cold loads:")
    print(f"  baseline (trivial page): {median_ms(fcp['baseline'])}")
    for key in ("gallery", "template"):
        print(f"  {key:8s}: {median_ms(fcp[key])}  = {statistics.median(fcp[key]) / b:.1f}x baseline")
    print(f"live reload, {args.saves} saves of card.yaml:")
    print(f"  form edit → card (baseline): {median_ms(typed)}")
    p50 = statistics.median(saved)
    print(
        f"  file save → card:            {median_ms(saved)}  = "
        f"{p50 / statistics.median(typed):.1f}x baseline; target p50 <= 500 ms: "
        + ("met" if p50 <= 0.5 else "MISSED")
    )


if __name__ == "__main__":
    main()
