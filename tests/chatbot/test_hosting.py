"""Media hosted on the MaaP, against the simulator's upload endpoints and file server: fitted to
the limits (Pillow, real ffmpeg), uploaded once per content hash however many sends ask at once
(in one process; across processes through Redis), uploaded again near expiry, a clear error
when a file cannot fit, and a failing upload retried through the runtime's send."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from chatbot.fit import Limits, Unfit, duration, fit
from chatbot.hosting import MediaHost
from chatbot.maap import MaapClient
from chatbot.store.redis import RedisStore
from chatbot.store.sqlite import SqliteStore
from chatbot.uploads import LocalFile
from renderer import BOTMESSAGE
from renderer.video import ffmpeg_exe
from simulators.maap import Fault, Simulator

CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
CM_BOT = "sip:12520040000@botplatform.rcs.chinamobile.com"


def noise_png(path: Path, side: int) -> LocalFile:
    """A picture that does not compress (random pixels): side² × 3 bytes as PNG."""
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG")
    return LocalFile(path, "image/png")


def video(path: Path, seconds: float, size: str = "640x360") -> LocalFile:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate=25:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-b:v", "4M", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return LocalFile(path, "video/mp4")


@pytest.fixture
async def sim(aiohttp_server: Any) -> AsyncIterator[tuple[Simulator, TestServer]]:
    s = Simulator(app_id="up-app", app_key="up-key", chatbot=CHATBOT)
    server = await aiohttp_server(s.app())
    yield s, server
    await s._close()


async def host_for(
    sim: tuple[Simulator, TestServer],
    store: Any,
    tmp: Path,
    dialect: str = "csp",
    limits: Limits | None = None,
) -> MediaHost:
    s, server = sim
    client = MaapClient(
        aiohttp.ClientSession(), str(server.make_url("")).rstrip("/"), app_id=s.app_id, app_key=s.app_key,
        dialect=dialect, shared=store.tokens() if hasattr(store, "tokens") else None,
    )  # fmt: skip
    return MediaHost(client, store, None, limits or Limits(), tmp / "fitted")


async def done(host: MediaHost) -> None:
    await host.client.close()
    await host.client.session.close()


async def test_a_big_picture_is_fitted_and_uploaded_once_for_many_concurrent_sends(
    sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    s, _server = sim
    pic = noise_png(tmp_path / "big.png", 1200)  # ~4.3 MB: over the 2 MB image limit
    assert pic.path.stat().st_size > 2 * 1024 * 1024
    store = SqliteStore(tmp_path / "chatbot.sqlite3")
    await store.open()
    host = await host_for(sim, store, tmp_path)
    try:
        records = await asyncio.gather(*(host.host(CHATBOT, pic) for _ in range(20)))
        assert len(s.carrier.uploads) == 1 and host.uploads == 1
        assert len({r["url"] for r in records}) == 1
        rec = records[0]
        assert rec["contentType"] == "image/jpeg" and rec["size"] <= 2 * 1024 * 1024
        async with aiohttp.ClientSession() as http, http.get(rec["url"]) as resp:
            served = await resp.read()
        assert resp.status == 200 and len(served) == rec["size"] and served[:2] == b"\xff\xd8"
        assert rec["until"] > 0  # the platform's expiry is kept
    finally:
        await done(host)
        await store.close()
    # a restarted process finds the record in the store: no second upload
    store = SqliteStore(tmp_path / "chatbot.sqlite3")
    await store.open()
    host = await host_for(sim, store, tmp_path)
    try:
        assert (await host.host(CHATBOT, pic))["url"] == rec["url"]
        assert len(s.carrier.uploads) == 1
    finally:
        await done(host)
        await store.close()


async def test_a_file_near_its_expiry_on_the_platform_is_uploaded_again(
    sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    s, _ = sim
    s.carrier.file_lifetime = 60.0  # the platform keeps files a minute: within the re-upload margin
    pic = noise_png(tmp_path / "p.png", 64)
    store = SqliteStore(tmp_path / "chatbot.sqlite3")
    await store.open()
    host = await host_for(sim, store, tmp_path)
    try:
        first = await host.host(CHATBOT, pic)
        second = await host.host(CHATBOT, pic)
        assert len(s.carrier.uploads) == 2 and first["url"] != second["url"]
        s.carrier.file_lifetime = 30 * 86400.0
        third = await host.host(CHATBOT, pic)
        assert (await host.host(CHATBOT, pic))["url"] == third["url"] and len(s.carrier.uploads) == 3
    finally:
        await done(host)
        await store.close()


async def test_a_picture_that_cannot_fit_is_an_error_naming_the_limit(tmp_path: Path) -> None:
    pic = noise_png(tmp_path / "p.png", 600)
    with pytest.raises(
        Unfit, match=r"image p\.png cannot be made to fit the platform's image limit of 1000 bytes"
    ):
        await fit(pic, "image", Limits(image_bytes=1000), tmp_path / "fitted")
    small = await fit(pic, "thumbnail", Limits(thumbnail_bytes=60_000), tmp_path / "fitted")
    assert small.content_type == "image/jpeg" and small.path.stat().st_size <= 60_000


async def test_a_long_heavy_video_is_cut_and_re_encoded_to_fit_then_hosted_on_china_mobile(
    sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    s, _ = sim
    s.chatbot = CM_BOT
    clip = video(tmp_path / "long.mp4", 4.0)
    limits = Limits(video_bytes=150_000, video_seconds=2.0, thumbnail_bytes=20_000)
    assert clip.path.stat().st_size > limits.video_bytes
    fitted = await fit(clip, "video", limits, tmp_path / "fitted")
    assert fitted.path.stat().st_size <= 150_000 and await duration(fitted.path) <= 2.1
    with pytest.raises(Unfit, match=r"video long\.mp4 cannot be made to fit the platform's video limit"):
        await fit(clip, "video", Limits(video_bytes=2_000, video_seconds=2.0), tmp_path / "fitted")
    thumb = noise_png(tmp_path / "thumb.png", 160)
    store = SqliteStore(tmp_path / "chatbot.sqlite3")
    await store.open()
    host = await host_for(sim, store, tmp_path, dialect="cm", limits=limits)
    try:
        rec = await host.host(CM_BOT, clip, thumb)
    finally:
        await done(host)
        await store.close()
    [up] = s.carrier.uploads
    assert up.dialect == "cm" and set(up.parts) == {"File", "Thumbnail"}
    assert rec["contentType"] == "video/mp4" and rec["size"] <= 150_000
    assert rec["thumbnailUrl"] != rec["url"] and rec["thumbnailSize"] <= 20_000


async def test_processes_sharing_redis_upload_a_file_once(
    sim: tuple[Simulator, TestServer], tmp_path: Path, redis_url: str
) -> None:
    s, _ = sim
    pic = noise_png(tmp_path / "p.png", 200)
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    for st in stores:
        await st.open()
    hosts = [await host_for(sim, st, tmp_path) for st in stores]
    try:
        records = await asyncio.gather(*(hosts[i % 2].host(CHATBOT, pic) for i in range(16)))
        assert len({r["url"] for r in records}) == 1
        assert len(s.carrier.uploads) == 1 and sum(h.uploads for h in hosts) == 1
    finally:
        for h in hosts:
            await done(h)
        for st in stores:
            await st.close()


async def test_the_runtime_uploads_a_cards_local_media_and_retries_a_failed_upload(
    sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    from chatbot.auth import WebhookAuth
    from chatbot.flows import FlowStore
    from chatbot.runtime import ChatbotRuntime, MaapAccount, RuntimeConfig
    from mingpian.settings import PROJECT_ROOT
    from renderer import TemplateStore

    s, server = sim
    pic = noise_png(tmp_path / "card.png", 100)

    async def resolve(url: str) -> LocalFile | None:
        return pic if url == "https://us.example/media/card.png" else None

    account = MaapAccount(str(server.make_url("")).rstrip("/"), s.app_id, s.app_key)
    config = RuntimeConfig(
        WebhookAuth(bearer="b"), sqlite_path=tmp_path / "chatbot.sqlite3", maap=account, media=resolve,
        media_dir=tmp_path / "fitted",
    )  # fmt: skip
    runtime = ChatbotRuntime(
        FlowStore(PROJECT_ROOT / "chatbots"), TemplateStore(PROJECT_ROOT / "card_templates"), config
    )
    await runtime.start()

    def card(i: int) -> dict[str, Any]:
        media = {"mediaUrl": "https://us.example/media/card.png", "mediaContentType": "image/png"}
        content = {"message": {"generalPurposeCard": {"content": {"title": "t", "media": media}}}}
        return {
            "messageId": f"m-{i}", "destinationAddress": ["tel:+8613912345678"], "senderAddress": CHATBOT,
            "conversationId": "c", "contributionId": f"x-{i}", "smsSupported": False,
            "messageList": [{"contentType": BOTMESSAGE, "contentText": content}],
        }  # fmt: skip

    try:
        s.fault = Fault(mode="error", status=503, target="upload", remaining=1)
        failed = await runtime.send(card(1))
        assert failed.outcome == "retry" and "media upload" in failed.detail and s.received == []
        assert (await runtime.send(card(1))).outcome == "ok"
        assert (await runtime.send(card(2))).outcome == "ok"
        # the same picture as a plain local file (a library file): already hosted
        rec = await runtime.host_file(CHATBOT, pic.path, "image/png")
        assert rec is not None and rec["url"].startswith(str(server.make_url("/files/")))
    finally:
        await runtime.close()
    assert len(s.carrier.uploads) == 1 and len(s.received) == 2
    media = s.received[0].body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"][
        "media"
    ]
    assert media["mediaUrl"].startswith(str(server.make_url("/files/")))
    assert media["mediaFileSize"] == pic.path.stat().st_size and media["mediaContentType"] == "image/png"
