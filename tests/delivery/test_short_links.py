"""Short links (delivery/shortlinks.py): codes, the store on both databases, opens written in
batches within a second and at close, first vs repeat."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

import pytest

from delivery.shortlinks import ALPHABET, CODE_LENGTH, LinkRefused, ShortLinks, client_class, new_code
from mingpian.api.delivery import delivery_key

from .support import AppFactory

DAY = 86400.0


def test_codes_are_long_random_base62() -> None:
    codes = [new_code() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9A-Za-z]{10}", c) for c in codes)
    assert len(set(codes)) == len(codes)
    # no sequence: consecutive codes share no prefix beyond chance, every symbol is used
    shared = sum(a[:3] == b[:3] for a, b in itertools.pairwise(codes))
    assert shared < 5
    counts = {ch: 0 for ch in ALPHABET}
    for c in codes:
        for ch in c:
            counts[ch] += 1
    expected = len(codes) * CODE_LENGTH / len(ALPHABET)
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())


def test_client_classes() -> None:
    assert client_class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148") == "iphone"
    assert client_class("Mozilla/5.0 (Linux; Android 13; V2203A) Mobile Safari/537.36") == "android"
    assert client_class("Mozilla/5.0 (Linux; Android 13) MicroMessenger/8.0.40") == "wechat"
    assert client_class("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120") == "desktop"
    assert client_class("Googlebot/2.1 (+http://www.google.com/bot.html)") == "bot"
    assert client_class("curl/8.4.0") == "bot"
    assert client_class("") == "other"


def test_written_without_https() -> None:
    links = ShortLinks(store=None, base="https://mp.cn/")  # type: ignore[arg-type]
    assert links.url("Ab3dE5gH7k") == "mp.cn/Ab3dE5gH7k"
    assert links.width == len("mp.cn/") + CODE_LENGTH
    plain = ShortLinks(store=None, base="http://127.0.0.1:8080/s")  # type: ignore[arg-type]
    assert plain.url("Ab3dE5gH7k") == "http://127.0.0.1:8080/s/Ab3dE5gH7k"


async def test_mint_resolve_and_refuse(make_app: AppFactory) -> None:
    client = await make_app()
    links = client.app[delivery_key].links
    for bad in ("javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://x/", "//evil.example/",
                "https://ok.example/\r\nSet-Cookie: x"):  # fmt: skip
        with pytest.raises(LinkRefused):
            await links.mint("sf", "+8613900000001", "", -1, "", "url", bad, DAY)
    link = await links.mint(
        "sf", "+8613900000001", "d1", 2, "sms", "url", "https://www.sf-express.com/x?a=1", DAY
    )
    await client.app[delivery_key].store.durable()
    links._cache.clear()
    got = await links.resolve(link.code)
    assert got == link and not got.expired
    assert await links.resolve(new_code()) is None
    assert await links.resolve("../../etc") is None
    card = await links.mint("sf", "+8613900000001", "d1", 2, "sms", "card", "ignored", -1)
    await client.app[delivery_key].store.durable()
    got = await links.resolve(card.code)
    assert got is not None and got.kind == "card" and got.target == "" and got.expired


async def test_opens_durable_within_a_second_first_then_repeat(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    links = service.links
    firsts: list[tuple[str, float]] = []

    async def first(link: Any, at: float) -> None:
        firsts.append((link.code, at))

    links.on_first = first
    link = await links.mint("sf", "+8613900000001", "d1", 0, "sms", "url", "https://example.com/", DAY)
    await service.store.durable()
    for client_ in ("android", "android", "wechat"):
        links.opened(link, client_)
    start = time.monotonic()
    while time.monotonic() - start < 1.0 and links.opens_written < 3:
        await asyncio.sleep(0.02)
    assert links.opens_written == 3, "opens not written within a second"
    rows = await service.store.link_opens(link.code)
    assert [r["first"] for r in rows] == [True, False, False]
    assert [r["client"] for r in rows] == ["android", "android", "wechat"]
    assert [c for c, _ in firsts] == [link.code]
    links.opened(link, "iphone")
    await asyncio.sleep(0.3)
    assert [r["first"] for r in await service.store.link_opens(link.code)] == [True, False, False, False]
    assert len(firsts) == 1


async def test_opens_flushed_on_close(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    links = service.links
    link = await links.mint("sf", "", "", -1, "", "url", "https://example.com/", DAY)
    for _ in range(50):
        links.opened(link, "desktop")
    await links.close()  # before the flusher's first run
    assert links.opens_written == 50
    assert len(await service.store.link_opens(link.code)) == 50
