"""The courier's hang-up card reaches every phone, on both stores: a simulated Huawei phone draws
it as card SMS (one SMS with a parse link, displayed on the vendor's render receipt); a phone that
cannot show card SMS gets plain SMS, shorter than the text without short links, whose card-page
link opens the H5 page, where 改约派送 gets the courier bot's answer; the funnel report counts
each step of both."""

from __future__ import annotations

import asyncio
import re
import time
from html import unescape
from pathlib import Path

from aiohttp.test_utils import TestServer

from delivery.metering.ledger import day_of
from renderer import TemplateStore
from renderer.legacy import degrade
from simulators.cardsms import CardSmsSim
from simulators.maap import Simulator

from .support import OPERATOR, SF_LINE, AppFactory, GatewaySim, auth, call, maap_settings, sample, settle
from .test_cardsms import CB_SECRET, HUAWEI_PHONE, PLAIN_PHONE, card_seed, cardsim, registered

__all__ = ["cardsim"]  # the fixture, shared with the card-SMS tests
BASE = "https://mp.cn/"
PHONE = "Mozilla/5.0 (Linux; Android 13; V2203A) Mobile Safari/537.36"


async def test_the_hangup_card_reaches_a_card_sms_phone_and_a_plain_one(
    make_app: AppFactory,
    gateway: GatewaySim,
    cardsim: tuple[CardSmsSim, str],
    maap: tuple[Simulator, TestServer, list[str]],
) -> None:
    sim, url = cardsim
    seed = card_seed()
    seed["enterprises"][0]["chatbot"] = "sip:106500@botplatform.rcs.chinaunicom.cn"  # the courier bot
    client = await make_app(
        seed,
        delivery_cardsms_url=url,
        delivery_cardsms_app_key="cs-key",
        delivery_cardsms_app_secret="cs-secret",
        delivery_cardsms_callback_secret=CB_SECRET,
        delivery_link_base=BASE,
        **maap_settings(maap[0], maap[1]),
    )
    sim.callback = str(client.make_url("/api/cardsms/koomessage"))
    gateway.on_delivered.append(sim.delivered)
    await registered(client, sim)

    # a Huawei phone: one SMS of one segment with the parse link, drawn, displayed
    await call(client, "every-1", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    drawn = await settle(client, "every-1:ended")
    assert (drawn["state"], drawn["channel"]) == ("displayed", "cardsms"), drawn
    [card_sms] = gateway.submitted(HUAWEI_PHONE[3:])
    assert card_sms["udh"] == "" and "km" not in card_sms["text"][:6]

    # a phone without card SMS: the next step's plain SMS, with short links and the card page
    await call(client, "every-2", "ended", caller=SF_LINE, callee=PLAIN_PHONE)
    plain = await settle(client, "every-2:ended")
    assert (plain["state"], plain["channel"]) == ("delivered", "sms"), plain
    segments = gateway.submitted(PLAIN_PHONE[3:])
    text = "".join(s["text"] for s in segments)
    store = TemplateStore(Path(__file__).resolve().parents[2] / "card_templates", 3600)
    before = degrade(store.get("courier-hangup").render(sample("courier-hangup")), "sms")
    assert before.segment_count == 3 and len(segments) < before.segment_count, text
    assert "sf-express.com" not in text  # the tracking URL went as a short link
    page_code = re.search(r"查看名片：mp\.cn/([0-9A-Za-z]{10})", text)
    assert page_code, text

    # its card page, then 改约派送 answered by the courier bot on the page
    page = await client.get(f"/s/{page_code.group(1)}", headers={"User-Agent": PHONE})
    html = unescape(await page.text())
    assert page.status == 200 and "改约派送" in html and "您的快递派送中" in html
    token = re.search(r'name="token" value="([^"]+)"', html)
    key = re.search(r'name="tap" value="(\d+)"[^>]*>\s*改约派送', html)
    assert token and key, html
    answer = await client.post(
        f"/s/{page_code.group(1)}/reply", data={"tap": key.group(1), "token": token.group(1)}
    )
    assert answer.status == 200 and "请选择新的派送时间" in unescape(await answer.text())
    assert maap[0].received == []  # the answer is on the page, never sent to the phone

    # the funnel: the card SMS drawn, the plain SMS delivered and its card page opened (opens
    # are written in batches, within a second)
    today = day_of(time.time())
    end = time.monotonic() + 3
    while True:
        body = await (
            await client.get(
                f"/api/enterprises/sf/reports/funnel?from={today}&to={today}", headers=auth(OPERATOR)
            )
        ).json()
        rows = {r["channel"]: r for r in body["channels"]}
        if rows["sms"]["opened"] or time.monotonic() > end:
            break
        await asyncio.sleep(0.05)
    assert (rows["cardsms"]["sent"], rows["cardsms"]["delivered"], rows["cardsms"]["displayed"]) == (1, 1, 1)
    sms = rows["sms"]
    assert (sms["sent"], sms["delivered"], sms["displayed"], sms["opened"]) == (1, 1, 1, 1), sms
