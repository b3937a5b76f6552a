"""Media hosted on the MaaP under load: N concurrent sends of one card whose picture is ours must
upload that picture once per platform, whatever the concurrency.

One run prints, for a CT/CU (csp) account and a China Mobile (cm) account side by side:
1. one process on the SQLite store: N concurrent sends per platform → uploads per platform,
   sends accepted, wall time and sends/s (the first send of each platform pays the upload);
2. the same N again (the record is found: no upload, no fitting);
3. two processes sharing a Redis store (a fleet), N/2 sends each per platform at the same time
   → uploads per platform across both.
The MaaP is the project's simulator (simulators/maap.py) in this process, on a real socket.

Run: .venv/bin/python bench/maap_upload_bench.py [--sends 400]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aiohttp import web  # noqa: E402
from benchlib import free_port, redis_server  # noqa: E402
from PIL import Image  # noqa: E402

from chatbot.auth import WebhookAuth  # noqa: E402
from chatbot.flows import FlowStore  # noqa: E402
from chatbot.runtime import ChatbotRuntime, MaapAccount, RuntimeConfig  # noqa: E402
from chatbot.uploads import LocalFile  # noqa: E402
from renderer import BOTMESSAGE, TemplateStore  # noqa: E402
from simulators.maap import Simulator  # noqa: E402

CSP_BOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
CM_BOT = "sip:12520040000@botplatform.rcs.chinamobile.com"
MEDIA_URL = "https://cards.example.cn/media/parcel.png"


def card(bot: str, mid: str) -> dict[str, Any]:
    media = {"mediaUrl": MEDIA_URL, "mediaContentType": "image/png", "height": "MEDIUM_HEIGHT"}
    content = {"message": {"generalPurposeCard": {"content": {"title": "您的快递派送中", "media": media}}}}
    return {
        "messageId": mid,
        "destinationAddress": [f"tel:+86139{abs(hash(mid)) % 10**8:08d}"],
        "senderAddress": bot,
        "conversationId": f"c-{mid}",
        "contributionId": f"x-{mid}",
        "smsSupported": True,
        "smsContent": "【顺丰速运】您的快递派送中",
        "messageList": [{"contentType": BOTMESSAGE, "contentText": content}],
    }


async def runtime(maap: str, tmp: Path, picture: Path, redis_url: str = "") -> ChatbotRuntime:
    async def resolve(url: str) -> LocalFile | None:
        return LocalFile(picture, "image/png") if url == MEDIA_URL else None

    csp = MaapAccount(maap, "bench-app", "bench-key", "csp", chatbots=(CSP_BOT,))
    cm = MaapAccount(maap, "bench-app", "bench-key", "cm", chatbots=(CM_BOT,), profile="china-mobile")
    config = RuntimeConfig(
        WebhookAuth(bearer="unused"),
        store="redis" if redis_url else "sqlite",
        sqlite_path=tmp / "chatbot.sqlite3",
        redis_url=redis_url,
        accounts=(csp, cm),
        media=resolve,
        media_dir=tmp / "fitted",
    )
    rt = ChatbotRuntime(FlowStore(ROOT / "chatbots"), TemplateStore(ROOT / "card_templates"), config)
    await rt.start()
    return rt


async def burst(rt: ChatbotRuntime, n: int, tag: str) -> dict[str, Any]:
    """n sends per platform, all at once; (outcomes, seconds)."""
    started = time.perf_counter()
    results = await asyncio.gather(
        *(rt.send(card(bot, f"{tag}-{bot[4:10]}-{i}")) for i in range(n) for bot in (CSP_BOT, CM_BOT))
    )
    took = time.perf_counter() - started
    return {"outcomes": dict(collections.Counter(r.outcome for r in results)), "seconds": took}


def uploads(sim: Simulator) -> dict[str, int]:
    return dict(collections.Counter(u.dialect for u in sim.carrier.uploads))


async def child(args: argparse.Namespace) -> None:
    """One process of the fleet phase: prints its burst's result as JSON."""
    tmp = Path(args.tmp)
    rt = await runtime(args.maap, tmp, Path(args.picture), args.redis)
    try:
        print(json.dumps(await burst(rt, args.sends, args.tag)))
    finally:
        await rt.close()


async def main(args: argparse.Namespace) -> None:
    n = args.sends
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        picture = tmp / "parcel.png"
        Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3)).save(picture, "PNG")  # ~1.5 MB
        sim = Simulator(app_id="bench-app", app_key="bench-key")
        runner = web.AppRunner(sim.app(), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        maap = f"http://127.0.0.1:{port}"
        print(f"MaaP upload-once bench: {n} concurrent sends of one card per platform (csp, cm); picture "
              f"{picture.stat().st_size / 1e6:.2f} MB PNG; simulator in this process")  # fmt: skip
        try:
            (tmp / "one").mkdir()
            rt = await runtime(maap, tmp / "one", picture)
            try:
                first = await burst(rt, n, "a")
                print(f"one process, SQLite store:   uploads {uploads(sim)}  sends {first['outcomes']}  "
                      f"{first['seconds']:.2f} s  {2 * n / first['seconds']:.0f} sends/s")  # fmt: skip
                again = await burst(rt, n, "b")
                print(f"  the same again (hosted):   uploads {uploads(sim)}  sends {again['outcomes']}  "
                      f"{again['seconds']:.2f} s  {2 * n / again['seconds']:.0f} sends/s")  # fmt: skip
            finally:
                await rt.close()
            sim.reset()
            async with redis_server(tmp) as redis_url:
                if redis_url is None:
                    print("two processes, Redis store: skipped (redis-server not installed)")
                    return
                procs = []
                for tag in ("p1", "p2"):
                    (tmp / tag).mkdir()
                    procs.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            __file__,
                            "--child",
                            "--maap",
                            maap,
                            "--redis",
                            redis_url,
                            "--tmp",
                            str(tmp / tag),
                            "--picture",
                            str(picture),
                            "--sends",
                            str(n // 2),
                            "--tag",
                            tag,
                            stdout=subprocess.PIPE,
                        )
                    )
                outs = [json.loads((await p.communicate())[0]) for p in procs]
                total = collections.Counter[str]()
                for o in outs:
                    total.update(o["outcomes"])
                slowest = max(o["seconds"] for o in outs)
                print(f"two processes, Redis store:  uploads {uploads(sim)}  sends {dict(total)}  "
                      f"{slowest:.2f} s (slower process)")  # fmt: skip
        finally:
            await runner.cleanup()
            await sim._close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sends", type=int, default=400)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--maap", default="")
    ap.add_argument("--redis", default="")
    ap.add_argument("--tmp", default="")
    ap.add_argument("--picture", default="")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    asyncio.run(child(a) if a.child else main(a))
