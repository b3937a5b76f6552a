"""The card-SMS platform adapter against its simulator: concurrent sends' capability checks and
parse-link requests gathered into one platform call per ≤ 100 recipients, capability answers
cached per number for the TTL (and asked afresh once a vendor changes its mind), a parse link
for a number nobody asked about refused, requests with a wrong signature refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from delivery.cardsms import CardSms
from delivery.gateways.cardsms_api import Platform, PlatformError
from delivery.gateways.cardsms_sign import authorization
from renderer import TemplateStore
from simulators.cardsms import CardSmsSim
from simulators.seeds import TEMPLATES


@pytest.fixture
async def platform(aiohttp_server: Any) -> AsyncIterator[tuple[CardSmsSim, Platform, str]]:
    sim = CardSmsSim()
    server = await aiohttp_server(sim.app())
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        yield sim, Platform(session, url, "cs-key", "cs-secret"), url
    await sim.close()


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+86139{start + i:08d}" for i in range(n)]


async def approved_template(sim: CardSmsSim, p: Platform) -> str:
    sim.mode = "hold"
    tpl = await p.submit_template({"card_sign_name": "顺丰速运", "pages": [{"tmpCards": []}]})
    await sim.decide(tpl, "approve", "HuaWei")
    return tpl


def cardsms(p: Platform, ttl: float = 60.0) -> CardSms:
    return CardSms(None, p, TemplateStore(TEMPLATES), ttl=ttl, window=0.05)  # type: ignore[arg-type]


async def test_250_concurrent_recipients_take_at_most_3_calls_of_each_kind(
    platform: tuple[CardSmsSim, Platform, str],
) -> None:
    sim, p, _ = platform
    tpl = await approved_template(sim, p)
    people = numbers(250)
    for n in people[:200]:  # 200 on Huawei phones, 50 on phones without card SMS
        sim.set_phone(n, "HuaWei")
    cs = cardsms(p)
    answers = await asyncio.gather(*(cs.capable(tpl, "HuaWei", n) for n in people))
    assert answers == [True] * 200 + [False] * 50
    assert sim.calls["check"] <= 3 and p.calls["check"] == sim.calls["check"], sim.calls
    items = [
        {"cust_flag": f"d{i}#0", "mobile": n[3:], "dync_params": {"title1": f"您好{i}"}}
        for i, n in enumerate(people[:200])
    ]
    links = await asyncio.gather(*(cs.resolves.ask((tpl, "顺丰速运"), it) for it in items))
    assert sim.calls["resolve"] <= 3 and len({link.aim_url for link in links}) == 200
    assert [link.cust_flag for link in links] == [it["cust_flag"] for it in items]
    assert sim.links[links[7].aim_code].params == {"title1": "您好7"}
    await cs.close()


async def test_capability_is_cached_for_the_ttl_and_asked_again_after_a_vendor_change(
    platform: tuple[CardSmsSim, Platform, str],
) -> None:
    sim, p, _ = platform
    tpl = await approved_template(sim, p)
    [a, b] = numbers(2)
    sim.set_phone(a, "HuaWei")
    sim.set_phone(b, "OPPO")
    cs = cardsms(p, ttl=0.3)
    assert await cs.capable(tpl, "HuaWei", a) and not await cs.capable(tpl, "HuaWei", b)
    for _ in range(5):  # cached: no more calls
        assert await cs.capable(tpl, "HuaWei", a) and not await cs.capable(tpl, "HuaWei", b)
    assert sim.calls["check"] == 2
    await sim.decide(tpl, "approve", "OPPO")  # another vendor approved: another key, asked afresh
    assert await cs.capable(tpl, "HuaWei,OPPO", b) and sim.calls["check"] == 3
    assert not await cs.capable(tpl, "HuaWei", b) and sim.calls["check"] == 3  # the old answer, still cached
    await asyncio.sleep(0.35)  # the TTL ran out
    assert await cs.capable(tpl, "HuaWei", b) and sim.calls["check"] == 4
    await cs.close()


async def test_a_parse_link_for_a_number_not_asked_about_is_refused(
    platform: tuple[CardSmsSim, Platform, str],
) -> None:
    sim, p, _ = platform
    tpl = await approved_template(sim, p)
    [asked, never] = numbers(2)
    sim.set_phone(asked, "HuaWei")
    sim.set_phone(never, "HuaWei")
    assert await p.check(tpl, [asked]) == {asked: True}
    with pytest.raises(PlatformError, match="not asked about"):
        await p.resolve(
            tpl, "顺丰速运", 3, "", [{"cust_flag": "x#0", "mobile": never[3:], "dync_params": {}}]
        )
    with pytest.raises(PlatformError, match="sms_signs"):  # the signature sent must be the template's
        await p.resolve(tpl, "别家", 3, "", [{"cust_flag": "x#0", "mobile": asked[3:], "dync_params": {}}])
    assert not sim.links
    got = await p.resolve(
        tpl, "顺丰速运", 3, "mp.cn", [{"cust_flag": "x#0", "mobile": asked[3:], "dync_params": {}}]
    )
    assert got["x#0"].aim_url.startswith("https://mp.cn/") and len(sim.links) == 1


async def test_requests_with_a_wrong_signature_are_refused(
    platform: tuple[CardSmsSim, Platform, str],
) -> None:
    sim, _, url = platform
    body = json.dumps({"tpl_id": "x", "mobiles": ["13900000000"]}).encode()
    path = "/v1/aim/mobile-capabilities/check"
    async with aiohttp.ClientSession() as s:
        for auth in ("", authorization("cs-key", "wrong-secret", "POST", path, body)):
            async with s.post(url + path, data=body, headers={"Authorization": auth}) as r:
                assert r.status == 401
    assert sim.calls["check"] == 0
