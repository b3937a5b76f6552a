"""Short links (delivery/shortlinks.py): codes, the store on both databases, opens written in
batches within a second and at close, first vs repeat."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import warnings
from typing import Any

import pytest
from aiohttp import web

from delivery.shortlinks import (
    ALPHABET,
    CODE_LENGTH,
    LinkRefused,
    ShortLink,
    ShortLinks,
    client_class,
    new_code,
)
from mingpian.api.delivery import delivery_key
from mingpian.api.delivery.links import MISSES, CardPages, card_page_key

from .support import CMB_KEY, CUSTOMER, OPERATOR, SF_KEY, AppFactory, GatewaySim, auth, call, seed_doc, settle

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
                "https://ok.example/\r\nSet-Cookie: x", "HTTPS://upper.example/"):  # fmt: skip
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


def links_seed(links: dict[str, Any], chain: tuple[str, ...] = ("sms",)) -> dict[str, Any]:
    return seed_doc(policy={"chain": list(chain), "timeouts": {c: 0.8 for c in chain}, "links": links})


def sms_text(gateway: GatewaySim, recipient: str = CUSTOMER) -> tuple[str, int]:
    """The SMS sent to `recipient` (its segments joined) and how many segments it took."""
    parts = gateway.submitted(recipient[3:], "sms")
    return "".join(p["text"] for p in parts), len(parts)


async def test_sms_text_carries_short_links_filled_per_recipient(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app(links_seed({"count_opens": True}), delivery_link_base="https://mp.cn/")
    other = "+8613911112222"
    await call(client, "k1", "ended")
    await call(client, "k2", "ended", callee=other)
    await settle(client, "k1:ended")
    await settle(client, "k2:ended")
    text, segments = sms_text(gateway)
    assert segments == 2, text  # the courier card: 3 segments with its long tracking URL
    assert "https://www.sf-express.com" not in text
    codes = re.findall(r"查询物流：mp\.cn/([0-9A-Za-z]{10})\n", text)
    assert len(codes) == 1, text
    assert "联系快递员：13800138000\n回复3 改约派送\n回复4 评价服务" in text  # reply keys unchanged
    text2, _ = sms_text(gateway, other)
    (code2,) = re.findall(r"mp\.cn/([0-9A-Za-z]{10})", text2)
    assert code2 != codes[0] and text2.replace(code2, codes[0]) == text  # same layout, own code
    service = client.app[delivery_key]
    link = await service.links.resolve(codes[0])
    assert link is not None
    assert (link.enterprise, link.recipient, link.delivery, link.step, link.channel, link.kind) == (
        "sf", CUSTOMER, "k1:ended", 0, "sms", "url",
    )  # fmt: skip
    assert 29 * DAY < link.expires - link.created <= 30 * DAY
    # the link in the text opens and redirects to the recorded target
    resp = await client.get(
        f"/s/{codes[0]}", allow_redirects=False, headers={"User-Agent": "Mozilla/5.0 (iPhone)"}
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "https://www.sf-express.com/track?no=SF1234567890123"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    info = await client.get(f"/api/enterprises/sf/links/{codes[0]}", headers=auth(SF_KEY))
    body = await info.json()
    assert info.status == 200, body
    assert body["url"] == f"mp.cn/{codes[0]}" and body["delivery"] == "k1:ended"
    assert [(o["client"], o["first"]) for o in body["opens"]] == [("iphone", True)]
    # the first open is the funnel's `opened` fact of that delivery's step (recorded once)
    assert not await service.funnel.opened("k1:ended", 0, "sms", "sf", time.time())
    # another enterprise's key: 404 exactly like a code that does not exist
    for code in (codes[0], new_code()):
        r = await client.get(f"/api/enterprises/cmb/links/{code}", headers=auth(CMB_KEY))
        assert r.status == 404
    r = await client.get(f"/api/enterprises/sf/links/{codes[0]}", headers=auth(CMB_KEY))
    assert r.status == 404


async def test_never_keeps_the_long_url(make_app: AppFactory, gateway: GatewaySim) -> None:
    client = await make_app(links_seed({"shorten": "never"}), delivery_link_base="https://mp.cn/")
    await call(client, "n1", "ended")
    await settle(client, "n1:ended")
    text, segments = sms_text(gateway)
    assert "https://www.sf-express.com/track?no=SF1234567890123" in text and segments == 3
    assert "mp.cn/" not in text
    store = client.app[delivery_key].store
    assert await store.db.all("SELECT code FROM short_links") == []  # nothing minted, nothing written


async def test_unknown_and_expired_answer_the_same_404(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    expired = await service.links.mint("sf", CUSTOMER, "", -1, "sms", "url", "https://example.com/", -1)
    await service.store.durable()
    unknown = await client.get(f"/s/{new_code()}", allow_redirects=False)
    gone = await client.get(f"/s/{expired.code}", allow_redirects=False)
    assert unknown.status == gone.status == 404
    assert await unknown.text() == await gone.text()
    assert "链接不存在或已过期" in await gone.text()
    assert unknown.headers["Content-Type"] == gone.headers["Content-Type"]


async def test_guessing_is_limited_per_address(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    good = await service.links.mint("sf", CUSTOMER, "", -1, "sms", "url", "https://example.com/", DAY)
    await service.store.durable()
    statuses = [(await client.get(f"/s/{new_code()}", allow_redirects=False)).status for _ in range(MISSES)]
    assert set(statuses) == {404}
    resp = await client.get(f"/s/{new_code()}", allow_redirects=False)
    assert resp.status == 429  # this miss passes the allowance
    resp = await client.get(f"/s/{good.code}", allow_redirects=False)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "请求过于频繁" in await resp.text()
    # another address is not refused
    other = await client.get(f"/s/{good.code}", allow_redirects=False, headers={"X-Forwarded-For": "x"})
    assert other.status == 429  # without trusted proxies the header is ignored: the same peer


async def test_card_links_call_the_card_page_hooks(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    card = await service.links.mint("sf", CUSTOMER, "d9", 1, "sms", "card", "", DAY)
    old = await service.links.mint("sf", CUSTOMER, "d8", 1, "sms", "card", "", -1)
    await service.store.durable()
    # nothing registered the card page (a server without the H5 part): the unknown code's 404
    with warnings.catch_warnings():  # the app's state changed after start: this test only
        warnings.simplefilter("ignore", DeprecationWarning)
        client.app.pop(card_page_key, None)
    resp = await client.get(f"/s/{card.code}")
    assert resp.status == 404 and "链接不存在或已过期" in await resp.text()
    seen: list[tuple[str, str]] = []

    async def page(request: web.Request, link: ShortLink) -> web.StreamResponse:
        seen.append(("page", link.code))
        return web.Response(text=f"名片 {link.delivery}", content_type="text/html")

    async def expired(request: web.Request, link: ShortLink) -> web.StreamResponse:
        seen.append(("expired", link.code))
        return web.Response(text="已过期", status=410, content_type="text/html")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client.app[card_page_key] = CardPages(page, expired)
    resp = await client.get(f"/s/{card.code}")
    assert resp.status == 200 and await resp.text() == "名片 d9"
    resp = await client.get(f"/s/{old.code}")
    assert resp.status == 410
    assert seen == [("page", card.code), ("expired", old.code)]


async def test_expired_and_unknown_do_the_same_work(make_app: AppFactory) -> None:
    """An expired link is dropped from the cache of hits when missed, so its next try reads the
    store as an unknown code does; the two take about as long."""
    client = await make_app(trusted_proxies=("127.0.0.1",))
    service = client.app[delivery_key]
    expired = await service.links.mint("sf", CUSTOMER, "", -1, "sms", "url", "https://example.com/", -1)
    await service.store.durable()
    await service.links.resolve(expired.code)  # cached, as a hit would be
    timings: dict[str, list[float]] = {"unknown": [], "expired": []}
    for i in range(40):  # each from its own address: the guessing limit stays out of it
        for kind, code in (("unknown", new_code()), ("expired", expired.code)):
            headers = {"X-Forwarded-For": f"198.51.100.{i}" if kind == "unknown" else f"203.0.113.{i}"}
            start = time.perf_counter()
            resp = await client.get(f"/s/{code}", allow_redirects=False, headers=headers)
            timings[kind].append(time.perf_counter() - start)
            assert resp.status == 404
            assert kind == "unknown" or expired.code not in service.links._cache
    unknown, gone = sorted(timings["unknown"])[20], sorted(timings["expired"])[20]
    assert abs(unknown - gone) < max(unknown, gone) * 0.5 + 0.002, (unknown, gone)


async def test_guessing_limit_is_shared_by_the_fleet(make_app: AppFactory, backend: dict[str, Any]) -> None:
    """Two server processes on one PostgreSQL and Redis: misses at either count for both."""
    if not backend:
        pytest.skip("one process owns a SQLite file: nothing to share")
    first = await make_app(trusted_proxies=("127.0.0.1",))
    second = await make_app(trusted_proxies=("127.0.0.1",))
    guesser = {"X-Forwarded-For": "203.0.113.50"}
    for i in range(MISSES):
        app = first if i % 2 else second
        assert (await app.get(f"/s/{new_code()}", headers=guesser)).status == 404
    resp = await first.get(f"/s/{new_code()}", headers=guesser)
    assert resp.status == 429  # past the allowance: Redis holds the 30 misses of both workers
    for app in (first, second):
        resp = await app.get(f"/s/{new_code()}", headers=guesser)
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    other = await first.get(f"/s/{new_code()}", headers={"X-Forwarded-For": "198.51.100.60"})
    assert other.status == 404  # another address is not refused


class FlakyOpens:
    """A store whose first writes of opens fail (the database away), then succeed."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[Any] = []
        self.generation = 0

    async def add_opens(self, opens: Any) -> list[tuple[str, bool]]:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        self.written.extend(opens)
        return [(o.id, False) for o in opens]


async def test_opens_outlive_an_outage() -> None:
    store = FlakyOpens(failures=2)
    links = ShortLinks(store, "https://mp.cn/")  # type: ignore[arg-type]
    link = ShortLink(new_code(), "sf", "", "", -1, "sms", "url", "https://example.com/", 0.0, 2e9)
    for _ in range(10):
        links.opened(link, "android")
    await asyncio.sleep(0.3)  # the first flush failed and was kept
    assert store.written == [] and len(links._pending) == 10
    for _ in range(5):
        links.opened(link, "iphone")
    await links.close()  # the second try fails too, the third writes all of them
    assert len(store.written) == 15 and len({o.id for o in store.written}) == 15


async def test_link_policy_is_checked(make_app: AppFactory) -> None:
    client = await make_app()
    op = auth(OPERATOR)
    ent = {"id": "jd", "name": "京东物流", "signature": "京东物流"}
    for links, path in (
        ({"ttl_days": 0}, "$.policy.links.ttl_days"),
        ({"ttl_days": 366}, "$.policy.links.ttl_days"),
        ({"shorten": "sometimes"}, "$.policy.links.shorten"),
        ({"count_opens": "yes"}, "$.policy.links.count_opens"),
        ({"base": "https://evil.example/"}, "$.policy.links"),  # the base is the platform's
    ):
        resp = await client.post("/api/enterprises", json={**ent, "policy": {"links": links}}, headers=op)
        body = await resp.json()
        assert resp.status == 422 and body["problems"][0]["path"] == path, body
    good = {"shorten": "always", "count_opens": True, "ttl_days": 7, "card_page": True}
    resp = await client.post("/api/enterprises", json={**ent, "policy": {"links": good}}, headers=op)
    assert resp.status == 201, await resp.text()


async def test_dry_run_shows_where_the_codes_go(make_app: AppFactory, gateway: GatewaySim) -> None:
    client = await make_app(links_seed({"shorten": "always"}), delivery_link_base="https://mp.cn/")
    r = await client.post(
        "/api/enterprises/sf/dry-run",
        json={"line": "138-0000-0001", "to": CUSTOMER, "phase": "ended"},
        headers=auth(SF_KEY),
    )
    body = await r.json()
    assert r.status == 200, body
    (sms,) = body["channels"]
    assert "查询物流：mp.cn/xxxxxxxxxx\n" in sms["legacy"]["text"]
    assert sms["legacy"]["segmentCount"] == 2
    assert sms["cost"]["segments"] == 2  # the estimate counts the text as sent
    assert sms["shortLinks"] == [
        {"key": "1", "target": "https://www.sf-express.com/track?no=SF1234567890123"}
    ]
    assert gateway.submitted() == []
