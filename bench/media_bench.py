"""Media benchmark: card pictures, card videos, cache hits, /healthz under video load.

One run prints:
1. median ms per PNG card at 720 px wide (draw + encode, in-process), without a photo and with
   a 720x400 JPEG photo from the template folder (targets: <= 20 ms / <= 35 ms), wall and CPU
   time (the second is what a render costs when other processes share the cores);
2. median s per 5 s video, upright 720x1280 (the default) and 1280x720 (draw frames + encode
   through the pipe), each against a plain
   ffmpeg command encoding the very same frames from a raw file with the same encoder settings,
   measured in the same run (target: <= 1.2x);
3. cache-hit latency of POST /render?format=png through a real server process (target: <= 2 ms);
4. /healthz p99 latency while 4 videos render in that server (target: <= 50 ms).

Run: .venv/bin/python bench/media_bench.py [--runs 30] [--video-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from benchlib import free_port  # noqa: E402
from PIL import Image  # noqa: E402

from mingpian.media_work import tune_malloc  # noqa: E402
from renderer import TemplateStore  # noqa: E402
from renderer.image import ImageOptions, render_card_bytes  # noqa: E402
from renderer.localfiles import MediaContext  # noqa: E402
from renderer.video import VideoOptions, build_slides, encode_command, frames, render_video  # noqa: E402

TEMPLATES = ROOT / "card_templates"
ASSETS = ROOT / "assets"


def photo_template(tmp: Path) -> Path:
    """The courier card with a 720x400 JPEG photo in its media slot, read from its folder."""
    root = tmp / "templates"
    folder = root / "courier-hangup"
    shutil.copytree(TEMPLATES / "courier-hangup", folder)
    card = (folder / "card.yaml").read_text("utf-8")
    card = card.replace("\"{{ photo_url if photo_url is defined else '' }}\"", "photo.jpg")
    assert "photo.jpg" in card, "courier card.yaml changed: update the bench"
    (folder / "card.yaml").write_text(card, "utf-8")
    w, h = 720, 400
    grad = Image.linear_gradient("L").resize((w, h))
    Image.merge("RGB", (grad, grad.rotate(90).resize((w, h)), Image.effect_noise((w, h), 40))).save(
        folder / "photo.jpg", quality=88
    )
    return root


def median_ms(fn: Any, runs: int, clock: Any = time.perf_counter) -> float:
    fn()  # warm: fonts, caches
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1000)
    return statistics.median(times)


def cpu_ms(fn: Any, runs: int) -> float:
    """The process's CPU time per call: on a machine others are loading, wall time measures
    the queue for a core, CPU time what the render itself costs."""
    return median_ms(fn, runs, time.process_time)


def bench_png(tmp: Path, runs: int) -> tuple[float, float, float, float]:
    plain = TemplateStore(TEMPLATES, 0).get("courier-hangup")
    msg = plain.render(plain.sample)
    ctx = MediaContext(plain.folder, ASSETS)
    opts = ImageOptions(width=720)
    no_photo = median_ms(lambda: render_card_bytes(msg, ctx, opts), runs)
    pt = TemplateStore(photo_template(tmp), 0).get("courier-hangup")
    pmsg = pt.render(pt.sample)
    assert pmsg.cards[0].media is not None and pmsg.cards[0].media.url == "photo.jpg"
    pctx = MediaContext(pt.folder, ASSETS)
    with_photo = median_ms(lambda: render_card_bytes(pmsg, pctx, opts), runs)
    return (
        no_photo,
        with_photo,
        cpu_ms(lambda: render_card_bytes(msg, ctx, opts), runs),
        cpu_ms(lambda: render_card_bytes(pmsg, pctx, opts), runs),
    )


def bench_video(tmp: Path, runs: int, aspect: str) -> tuple[float, float, int]:
    pt = TemplateStore(photo_template(tmp / f"v{aspect.replace(':', 'x')}"), 0).get("courier-hangup")
    msg = pt.render(pt.sample)
    ctx = MediaContext(pt.folder, ASSETS)
    opts = VideoOptions(aspect=aspect, seconds=5.0)  # type: ignore[arg-type]
    ours, plain = [], []
    size_bytes = 0
    # The same frames, written once to a raw file for the plain ffmpeg baseline.
    raw = tmp / "frames.rgb"
    size = opts.size
    slides = build_slides(msg, ctx, size, 5.0)
    with raw.open("wb") as f:
        for frame in frames(slides, size, 5.0, opts.fps, opts.transition):
            f.write(frame)
    base_cmd = encode_command(tmp / "plain.mp4", size, opts.fps, opts)
    base_cmd[base_cmd.index("pipe:")] = str(raw)
    for i in range(runs):
        t0 = time.perf_counter()
        res = asyncio.run(render_video(msg, ctx, opts, tmp / f"ours{i}.mp4"))
        ours.append(time.perf_counter() - t0)
        size_bytes = res.bytes
        t0 = time.perf_counter()
        subprocess.run(base_cmd, check=True, stdin=subprocess.DEVNULL)
        plain.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(plain), size_bytes


async def bench_server(tmp: Path, hits: int) -> tuple[float, float, float, int]:
    port = free_port()
    env = {
        **os.environ,
        "MINGPIAN_DATA_DIR": str(tmp / "var"),
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_DEMO": "off",  # the server alone, without the demo's simulators
        "MINGPIAN_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    sample = json.loads((TEMPLATES / "courier-hangup" / "sample.json").read_text("utf-8"))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            url = base + "/api/templates/courier-hangup/render?format=png&width=720"
            async with http.post(url, json=sample) as r:
                assert r.status == 200 and r.headers["X-Cache"] == "miss", r.status
                await r.read()
            lat = []
            for _ in range(hits):
                t0 = time.perf_counter()
                async with http.post(url, json=sample) as r:
                    await r.read()
                    assert r.headers["X-Cache"] == "hit"
                lat.append((time.perf_counter() - t0) * 1000)
            hit_ms = statistics.median(lat)
            hit_p99 = sorted(lat)[int(len(lat) * 0.99) - 1]

            # Four 5 s 720p videos (distinct data: no cache, no sharing), then /healthz meanwhile.
            jobs = []
            for i in range(4):
                data = {**sample, "waybill": f"SF10000000000{i}"}
                async with http.post(
                    base + "/api/templates/courier-hangup/render"
                    "?format=mp4&aspect=16:9&width=1280&seconds=5&async=1",
                    json=data,
                ) as r:
                    assert r.status == 202, await r.text()
                    jobs.append((await r.json())["links"]["self"])
            health: list[float] = []
            done = 0
            polls = 0
            while done < 4:
                t0 = time.perf_counter()
                async with http.get(base + "/healthz") as r:
                    await r.read()
                health.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.01)
                polls += 1
                if polls % 25 == 0:
                    done = 0
                    for j in jobs:
                        async with http.get(base + j) as r:
                            st = (await r.json())["status"]
                        assert st in ("queued", "running", "done"), st
                        done += st == "done"
            health.sort()
            p99 = health[max(0, int(len(health) * 0.99) - 1)]
            return hit_ms, hit_p99, p99, len(health)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def verdict(value: float, target: float) -> str:
    return "OK " if value <= target else "MISS"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--video-runs", type=int, default=5)
    ap.add_argument("--hits", type=int, default=300)
    args = ap.parse_args()
    # In-process renders run with the allocator settings of the media workers that do them in
    # the server (mingpian/media_work.py), so the figures are the server's.
    tune_malloc()
    with tempfile.TemporaryDirectory(prefix="mingpian-media-bench-") as t:
        tmp = Path(t)
        no_photo, with_photo, no_photo_cpu, with_photo_cpu = bench_png(tmp, args.runs)
        videos = {a: bench_video(tmp, args.video_runs, a) for a in ("9:16", "16:9")}
        hit_ms, hit_p99, health_p99, n_health = asyncio.run(bench_server(tmp, args.hits))
    print(
        f"PNG card 720 px, no photo      : {no_photo:7.2f} ms median   target <= 20 ms  "
        f"{verdict(no_photo, 20)}"
    )
    print(
        f"PNG card 720 px, 720x400 photo : {with_photo:7.2f} ms median   target <= 35 ms  "
        f"{verdict(with_photo, 35)}"
    )
    print(f"  the same, CPU time           : {no_photo_cpu:7.2f} ms / {with_photo_cpu:.2f} ms (photo)")
    for aspect, (ours, plain, vbytes) in videos.items():
        label = {"9:16": "720x1280 (default)", "16:9": "1280x720"}[aspect]
        ratio = ours / plain
        print(f"5 s {label:18} video : {ours:7.3f} s median ({vbytes / 1024:.0f} KiB)")
        print(f"  plain ffmpeg, same frames    : {plain:7.3f} s median")
        print(
            f"  ratio ours / plain ffmpeg    : {ratio:7.2f} x        target <= 1.2 x  {verdict(ratio, 1.2)}"
        )
    print(
        f"cache hit via HTTP (PNG)       : {hit_ms:7.2f} ms median (p99 {hit_p99:.2f} ms)   "
        f"target <= 2 ms  {verdict(hit_ms, 2)}"
    )
    print(
        f"/healthz p99 during 4 videos   : {health_p99:7.2f} ms ({n_health} requests)   "
        f"target <= 50 ms  {verdict(health_p99, 50)}"
    )


if __name__ == "__main__":
    main()
