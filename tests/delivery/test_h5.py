"""The H5 card page of a kind-"card" short link (mingpian/h5/), on both stores: the delivery's card
as composed for its chain, the page's headers, link buttons that count and redirect only to the
card's own URL, the reply form (its token, the tap counted, the courier bot's answer on the page
and nothing sent over the MaaP), the expired page, and the open recorded."""

from __future__ import annotations

import asyncio
import re
import time
from html import unescape
from typing import Any

from aiohttp.test_utils import TestServer

from delivery.metering.ledger import day_of
from mingpian.api.delivery import delivery_key
from mingpian.api.delivery.links import MISSES
from mingpian.h5 import H5Pages, h5_pages_key
from renderer.h5 import STYLE_HASH
from simulators.maap import Simulator

from .support import CUSTOMER, DAY, SF_HOTLINE, SF_LINE, AppFactory, Client, call, maap_settings, seed_doc

PHONE = "Mozilla/5.0 (Linux; Android 13; V2203A) Mobile Safari/537.36"
HOSTILE = '"><script>alert(1)</script>'


def _seed() -> dict[str, Any]:
    seed = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 0.5}})
    sf = seed["enterprises"][0]
    sf["chatbot"] = "sip:106500@botplatform.rcs.chinaunicom.cn"  # the courier bot's address
    sf["cards"][1]["data"]["eta"] = "今天" + HOSTILE
    return seed


async def _card_link(client: Client, call_id: str = "h5-1", ttl: float = DAY, line: str = SF_LINE) -> Any:
    posted = await call(client, call_id, "ended", caller=line)
    svc = client.app[delivery_key]
    link = await svc.links.mint("sf", CUSTOMER, posted["delivery"], 0, "sms", "card", "", ttl)
    await svc.store.durable()
    return link


async def _taps(client: Client) -> dict[str, int]:
    rows = await client.app[delivery_key].store.taps("sf")
    return {r["button"]: r["taps"] for r in rows}


def _token(html: str) -> str:
    m = re.search(r'name="token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


async def test_page_headers_escaping_and_open(make_app: AppFactory) -> None:
    client = await make_app(_seed())
    link = await _card_link(client)
    resp = await client.get(f"/s/{link.code}", headers={"User-Agent": "Mozilla/5.0 (Linux; Android 13)"})
    assert resp.status == 200, await resp.text()
    html = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    for part in ("default-src 'none'", f"style-src {STYLE_HASH}", "form-action 'self'", "base-uri 'none'",
                 "frame-ancestors 'self'"):  # fmt: skip
        assert part in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert '<html lang="zh-CN">' in html and "<script" not in html.lower()
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'href="/s/{link.code}/tap/0"' in html  # 查询物流 through the tap route, not the site itself
    assert 'href="tel:13800138000"' in html
    assert f'action="/s/{link.code}/reply#answer"' in html
    # the open is recorded (written by the links' flusher within a second)
    svc = client.app[delivery_key]
    opens = await svc.links.opens(link.code)
    assert [o["client"] for o in opens] == ["android"]
    # the funnel: the card displayed on the page (h5) and its link opened, once each
    await (await client.get(f"/s/{link.code}")).text()
    await svc.links.flush()
    await svc.store.durable()
    today = day_of(time.time())
    rows = await svc.funnel.days("sf", today, today, time.time())
    sms = [r for r in rows if r["channel"] == "sms"]
    assert sms and sms[0]["displayed"] == 1 and sms[0]["opened"] == 1, rows
    # another delivery of the same card: its own code and token in the same page; then cached
    other = await _card_link(client, "h5-2")
    pages = client.app[h5_pages_key]
    html2 = await (await client.get(f"/s/{other.code}")).text()
    assert other.code in html2 and link.code not in html2 and _token(html2) != _token(html)
    assert html2.replace(other.code, link.code).replace(_token(html2), _token(html)) == html
    renders, hits = pages.renders, pages.hits
    html3 = await (await client.get(f"/s/{other.code}")).text()
    assert html3 == html2 and pages.renders == renders and pages.hits == hits + 1


async def test_tap_redirects_only_to_the_cards_url(make_app: AppFactory) -> None:
    client = await make_app(_seed())
    link = await _card_link(client)
    resp = await client.get(
        f"/s/{link.code}/tap/0?url=https://evil.example/", allow_redirects=False,
        headers={"Referer": "https://evil.example/", "User-Agent": PHONE},
    )  # fmt: skip
    assert resp.status == 302
    assert resp.headers["Location"] == "https://www.sf-express.com/track?no=SF1234567890123"
    assert (await _taps(client)).get("查询物流") == 1
    crawler = await client.get(
        f"/s/{link.code}/tap/0", allow_redirects=False, headers={"User-Agent": "Googlebot/2.1"}
    )
    head = await client.head(f"/s/{link.code}/tap/0", allow_redirects=False)
    assert crawler.status == head.status == 302
    assert (await _taps(client)).get("查询物流") == 1  # neither counted
    # a button that is no link, one that does not exist, a code that is no card link: no redirect
    for path in (
        f"/s/{link.code}/tap/2",
        f"/s/{link.code}/tap/9",
        f"/s/{link.code}/tap/x",
        "/s/ZZZZZZZZZZ/tap/0",
    ):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 404 and "Location" not in r.headers
    # the dial link's ping counts its tap without going anywhere
    ping = await client.post(f"/s/{link.code}/tap/1", data=b"PING", headers={"Content-Type": "text/ping"})
    assert ping.status == 204
    assert (await _taps(client)).get("联系快递员") == 1


async def test_reply_needs_the_token_and_shows_the_bots_answer(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, server, _ = maap
    client = await make_app(_seed(), **maap_settings(sim, server))
    link = await _card_link(client)
    html = await (await client.get(f"/s/{link.code}")).text()
    refused = await client.post(f"/s/{link.code}/reply", data={"tap": "2"})
    assert refused.status == 403
    body = await refused.json()
    assert body["error"] == "csrf_failed" and body["problems"][0]["path"] == "token"
    wrong = await client.post(f"/s/{link.code}/reply", data={"tap": "2", "token": "x" * 32})
    assert wrong.status == 403
    assert not await _taps(client)
    foreign = await client.post(
        f"/s/{link.code}/reply",
        data={"tap": "2", "token": _token(html)},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403

    resp = await client.post(f"/s/{link.code}/reply", data={"tap": "2", "token": _token(html)})
    assert resp.status == 200, await resp.text()
    page = unescape(await resp.text())
    assert "改约派送" in page and "请选择新的派送时间" in page  # the bot's reschedule card
    assert "明天 09:00-12:00" in page
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert (await _taps(client)).get("改约派送") == 1
    # one conversation with the person's 5G taps: the engine's state for tel:<recipient>
    runtime = client.app[h5_pages_key].runtime
    assert runtime is not None
    loaded = await runtime.store.load(f"courier\x1ftel:{CUSTOMER}", "")
    assert loaded.state and loaded.state["node"] == "reschedule"
    # nothing for the phone: no outbox row, nothing at the MaaP
    assert await runtime.store.pending() == 0

    # the answer's slot button posts its postback: the bot confirms, again on the page
    slot = re.search(r'name="postback" value="([^"]+)"', await resp.text())
    assert slot
    confirm = await client.post(
        f"/s/{link.code}/reply", data={"postback": unescape(slot.group(1)), "token": _token(html)}
    )
    text = unescape(await confirm.text())
    assert confirm.status == 200 and "GY" in text  # the confirmation's ticket
    rated = await client.post(f"/s/{link.code}/reply", data={"tap": "3", "token": _token(html)})
    assert "请回复 1-5 分" in unescape(await rated.text())  # 评价服务's text answer
    await asyncio.sleep(0.3)
    assert await runtime.store.pending() == 0 and sim.received == []


async def test_expired_page_names_the_enterprise_not_the_card(make_app: AppFactory) -> None:
    client = await make_app(_seed())
    link = await _card_link(client, ttl=0.01)
    time.sleep(0.02)
    resp = await client.get(f"/s/{link.code}")
    assert resp.status == 410
    html = unescape(await resp.text())
    assert "顺丰速运" in html and "138 0000 0001" in html and 'href="tel:+8613800000001"' in html
    for secret in ("SF1234567890123", "派送中", "王", "查询物流", "改约派送"):
        assert secret not in html
    assert resp.headers["Cache-Control"] == "private, no-store"
    # its buttons are gone too
    tap = await client.get(f"/s/{link.code}/tap/0", allow_redirects=False)
    assert tap.status == 410 and "Location" not in tap.headers
    reply = await client.post(f"/s/{link.code}/reply", data={"tap": "2"})
    assert reply.status == 410
    # an unverified line (the hotline) shows its number only, as its card did
    hotline = await _card_link(client, "h5-hot", ttl=0.01, line=SF_HOTLINE)
    time.sleep(0.02)
    page = unescape(await (await client.get(f"/s/{hotline.code}")).text())
    assert "400-811-1111" in page and 'href="tel:+864008111111"' in page and "顺丰" not in page


async def test_button_routes_share_the_guessing_limit(make_app: AppFactory) -> None:
    client = await make_app(_seed())
    link = await _card_link(client)
    statuses = [
        (await client.get(f"/s/{code}/tap/0", allow_redirects=False)).status
        for code in (f"{i:010d}" for i in range(MISSES + 2))
    ]
    # the miss past the allowance is itself refused, as on /s/{code}
    assert statuses == [404] * MISSES + [429, 429]
    refused = await client.post(f"/s/{link.code}/reply", data={"tap": "2", "token": "x"})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await client.get(f"/s/{link.code}")).status == 429  # the same count as the page's route


def test_pictures_only_from_our_media_host() -> None:
    pages = H5Pages(None, None, "https://mp.example.cn")  # type: ignore[arg-type]
    assert "img-src https://mp.example.cn;" in pages.csp
    assert pages.image("https://mp.example.cn/media/ab12.png") == "https://mp.example.cn/media/ab12.png"
    for elsewhere in ("https://img.example.cn/parcel.jpg", "https://mp.example.cn.evil.example/media/x.png",
                      "https://mp.example.cn/api/x.png", "javascript:alert(1)"):  # fmt: skip
        assert pages.image(elsewhere) is None


async def test_the_cards_picture_from_our_media_host(make_app: AppFactory) -> None:
    seed = _seed()
    seed["enterprises"][0]["cards"][1]["data"]["photo_url"] = "https://mp.example.cn/media/parcel.jpg"
    client = await make_app(seed, public_base_url="https://mp.example.cn")
    link = await _card_link(client)
    resp = await client.get(f"/s/{link.code}")
    assert 'src="https://mp.example.cn/media/parcel.jpg"' in await resp.text()
    assert "img-src https://mp.example.cn;" in resp.headers["Content-Security-Policy"]
