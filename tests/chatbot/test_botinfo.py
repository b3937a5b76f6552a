"""The chatbot's information (description, persistent menu) submitted to its platform and used
only once the carrier passed it, over real HTTP on both chatbot stores: the MaaP simulator takes
the update, holds its review, then calls the bot's `/check` signed as the platform; a repeat
decision changes nothing, a forged one is refused, and bad input is a 422 naming the path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from chatbot.auth import csp_signature_headers
from simulators.maap import Simulator

from .support import CSP_TOKEN, OPERATOR, start_bot

CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
INFO = "/api/chatbot/bots/courier/information"
MENU = {
    "entries": [
        {"reply": {"displayText": "查件", "postback": {"data": "menu:track"}}},
        {
            "menu": {
                "displayText": "联系我们",
                "entries": [
                    {
                        "action": {
                            "displayText": "客服电话",
                            "postback": {"data": "menu:call"},
                            "dialerAction": {"dialPhoneNumber": {"phoneNumber": "+8695338"}},
                        }
                    }
                ],
            }
        },
    ]
}
T = Any


def decision(result: str, description: str = "") -> bytes:
    body = {
        "type": "chatbotInformation", "result": result, "time": "2026-05-01T10:00:00+08:00",
        "description": description, "remark": f"chatbotId: {CHATBOT}",
    }  # fmt: skip
    return json.dumps(body, ensure_ascii=False).encode()


async def post_check(client: Any, raw: bytes, token: str = CSP_TOKEN) -> int:
    resp = await client.post(
        f"/maap/courier/notifyInfoNotification/{CHATBOT}/check",
        data=raw,
        headers={**csp_signature_headers(token), "Content-Type": "application/json"},
    )
    return resp.status


async def information(client: Any) -> dict[str, Any]:
    resp = await client.get(INFO, headers=OPERATOR)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_held_update_is_not_in_use_until_it_passes(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path, store: dict[str, Any]
) -> None:
    s, _ = sim
    s.carrier.review.mode = "hold"
    bot = await start_bot(aiohttp_client, sim, tmp_path, **store)
    update = {"description": "顺丰速运官方快递助手", "menu": MENU}
    resp = await bot.client.post(INFO, json=update, headers=OPERATOR)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["current"] is None and body["pending"]["state"] == "waiting"
    assert [(u.part, u.body) for u in s.carrier.info.updates] == [
        ("optionals", {"serviceDescription": "顺丰速运官方快递助手"}),
        ("menu", {"menu": MENU}),
    ]
    # while it waits: not in use, and a second update is refused
    shown = await information(bot.client)
    assert shown["current"] is None and shown["pending"]["information"] == update
    again = await bot.client.post(INFO, json={"description": "另一个"}, headers=OPERATOR)
    assert again.status == 409 and (await again.json())["error"] == "info_pending"
    assert len(s.carrier.info.updates) == 2

    # a forged decision is refused and changes nothing
    assert await post_check(bot.client, decision("pass"), token="not-the-token") == 401
    assert (await information(bot.client))["pending"]["state"] == "waiting"

    # the carrier passes both requests: the information is in use
    await s.carrier.review.decide_info(CHATBOT, True)
    assert s.carrier.review.answers == [(f"chatbotId: {CHATBOT}", 200)] * 2
    passed = await information(bot.client)
    assert passed["current"]["information"] == update and passed["pending"] is None
    assert s.carrier.info.shown[CHATBOT]["menu"] == MENU

    # the same decision again (freshly signed) changes nothing, nor does a late fail
    assert await post_check(bot.client, decision("pass")) == 200
    assert await post_check(bot.client, decision("fail", "迟到的结论")) == 200
    assert await information(bot.client) == passed


async def test_a_refused_update_stays_unused_with_the_carriers_reason(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path, store: dict[str, Any]
) -> None:
    s, _ = sim
    bot = await start_bot(aiohttp_client, sim, tmp_path, **store)
    # auto review (the default): the first description passes on its own
    first = await bot.client.post(INFO, json={"description": "快递助手"}, headers=OPERATOR)
    assert first.status == 202
    for _ in range(100):
        shown = await information(bot.client)
        if shown["current"] is not None:
            break
        await asyncio.sleep(0.02)
    assert shown["current"]["information"] == {"description": "快递助手"} and shown["pending"] is None

    s.carrier.review.mode = "hold"
    resp = await bot.client.post(INFO, json={"description": "全网最低价"}, headers=OPERATOR)
    assert resp.status == 202
    await s.carrier.review.decide_info(CHATBOT, False, "描述含有违规内容")
    refused = await information(bot.client)
    assert refused["current"]["information"] == {"description": "快递助手"}
    pending = refused["pending"]
    assert pending["state"] == "refused" and pending["description"] == "描述含有违规内容"
    assert pending["information"] == {"description": "全网最低价"}
    # a repeat of the fail, or a pass arriving after it, changes nothing
    assert await post_check(bot.client, decision("fail", "描述含有违规内容")) == 200
    assert await post_check(bot.client, decision("pass")) == 200
    assert await information(bot.client) == refused
    # a refused update does not block the next one
    fixed = await bot.client.post(INFO, json={"description": "顺丰速运快递助手"}, headers=OPERATOR)
    assert fixed.status == 202 and (await fixed.json())["pending"]["state"] == "waiting"


async def test_bad_input_names_the_path(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    s, _ = sim
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    client = bot.client

    async def problems(body: Any) -> list[str]:
        resp = await client.post(INFO, json=body, headers=OPERATOR)
        assert resp.status == 422, await resp.text()
        got = await resp.json()
        assert got["error"] == "invalid"
        return [p["path"] for p in got["problems"]]

    assert "$.description" in await problems({"description": 5})
    assert "$.menu.entries" in await problems({"menu": {"entries": []}})
    four = {"entries": [MENU["entries"][0]] * 4}
    assert "$.menu.entries" in await problems({"menu": four})
    deep = {"description": "x", "menu": {"entries": [{"reply": {"displayText": "x" * 30, "postback": {}}}]}}
    assert "$.menu.entries[0]" in await problems(deep)
    assert await problems({}) == ["$"]
    assert await problems({"colour": "#000000"}) == ["$"]
    assert s.carrier.info.updates == []  # nothing reached the platform

    assert (await client.post(INFO, json={"description": "x"})).status == 401
    resp = await client.post(
        "/api/chatbot/bots/nope/information", json={"description": "x"}, headers=OPERATOR
    )
    assert resp.status == 404 and (await resp.json())["error"] == "unknown_bot"


async def test_the_platform_refusing_the_update_records_nothing(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    s, _ = sim
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    await s.carrier.review.check("chatbotInformation", True, f"chatbotId: {CHATBOT}")  # nothing waits
    assert s.carrier.review.answers[-1][1] == 200
    s.fault.mode, s.fault.error_code, s.fault.target = "errorcode", 20002, "info"
    resp = await bot.client.post(INFO, json={"description": "快递助手"}, headers=OPERATOR)
    body = await resp.json()
    assert resp.status == 502 and body["error"] == "maap_refused" and "20002" in body["message"]
    assert await information(bot.client) == {
        "bot": "courier",
        "chatbot": CHATBOT,
        "current": None,
        "pending": None,
    }
