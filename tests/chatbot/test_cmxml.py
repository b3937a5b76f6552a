"""China Mobile XML callbacks: a tap and a base64 text through the real webhook, repeats deduped,
delivery reports recorded, and hostile or malformed XML refused with 400 naming the element."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from chatbot.auth import username_header
from tests.chatbot.support import OPERATOR, PASSWORD, USERNAME, WAYBILL, start_bot

T = Any
URI = "sip%3A10657%40botplatform.rcs.chinamobile.com"
NS = "urn:oma:xml:rest:netapi:messaging:1"
AUTH = {**username_header(USERNAME, PASSWORD), "Content-Type": "application/xml", "traceUniqueID": "t-1"}


def inbound(mid: str, content_type: str, body: str, b64: bool = True) -> bytes:
    text = base64.b64encode(body.encode()).decode() if b64 else body
    enc = "<contentEncoding>base64</contentEncoding>" if b64 else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<msg:inboundMessageNotification xmlns:msg="{NS}">
  <inboundMessage>
    <destinationAddress>sip:10657@botplatform.rcs.chinamobile.com</destinationAddress>
    <senderAddress>tel:+8613900001234</senderAddress>
    <messageId>{mid}</messageId>
    <contentType>{content_type}</contentType>{enc}
    <bodyText>{text}</bodyText>
    <conversationID>conv-cm-1</conversationID>
    <contributionID>contrib-{mid}</contributionID>
  </inboundMessage>
</msg:inboundMessageNotification>""".encode()


async def test_cm_tap_and_text_reach_the_flow_once(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    tap = json.dumps(
        {
            "response": {
                "reply": {"displayText": "查询物流", "postback": {"data": f"track:{WAYBILL}"}},
                "type": "reply",
            }
        },
        ensure_ascii=False,
    )
    body = inbound("cm-1", "application/vnd.gsma.botsuggestion.response.v1.0+json", tap)
    for _ in range(2):
        resp = await bot.client.post(
            f"/maap/courier/InboundMessageNotification/{URI}", data=body, headers=AUTH
        )
        assert resp.status == 204, await resp.text()
    resp = await bot.client.post(
        f"/maap/courier/InboundMessageNotification/{URI}",
        data=inbound("cm-2", "text/plain", "我要查件"),
        headers=AUTH,
    )
    assert resp.status == 204
    got = await bot.sim.wait_for(2)
    assert got[0].text.startswith(f"运单 {WAYBILL}：派送中") and got[0].user == "tel:+8613900001234"
    assert got[1].text.startswith("请发送您的运单号")
    assert bot.sim.stats()["replies"] == 2
    report = f"""<msg:deliveryInfoNotification xmlns:msg="{NS}"><deliveryInfo>
      <address>tel:+8613900001234</address><messageId>{got[0].message_id}</messageId>
      <deliveryStatus>DeliveredToTerminal</deliveryStatus></deliveryInfo></msg:deliveryInfoNotification>"""
    resp = await bot.client.post(
        f"/maap/courier/DeliveryInfoNotification/{URI}", data=report.encode(), headers=AUTH
    )
    assert resp.status == 204
    info = await (await bot.client.get(f"/api/chatbot/messages/{got[0].message_id}", headers=OPERATOR)).json()
    assert info["delivery"] == "delivered"


BAD = [
    (
        "billion laughs",
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<inboundMessageNotification><inboundMessage><messageId>&b;</messageId></inboundMessage>"
        b"</inboundMessageNotification>",
        "/",
    ),
    (
        "external entity",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<inboundMessageNotification>&e;</inboundMessageNotification>",
        "/",
    ),
    ("not xml", b"{not xml", "/"),
    ("wrong root", b"<hello/>", "/hello"),
    (
        "no message id",
        f'<m:inboundMessageNotification xmlns:m="{NS}"><inboundMessage><senderAddress>tel:+86139'
        f"</senderAddress><bodyText>hi</bodyText></inboundMessage></m:inboundMessageNotification>".encode(),
        "/inboundMessageNotification/inboundMessage/messageId",
    ),
    (
        "bad base64",
        inbound("x", "text/plain", "x", b64=False).replace(
            b"<bodyText>", b"<contentEncoding>base64</contentEncoding><bodyText>%%"
        ),
        "/inboundMessageNotification/inboundMessage/bodyText",
    ),
]


@pytest.mark.parametrize(("name", "raw", "path"), BAD, ids=[b[0] for b in BAD])
async def test_bad_xml_is_400_naming_the_element(
    aiohttp_client: T, sim: T, tmp_path: Path, name: str, raw: bytes, path: str
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    resp = await bot.client.post(f"/maap/courier/InboundMessageNotification/{URI}", data=raw, headers=AUTH)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["problems"][0]["path"] == path


async def test_cm_callbacks_need_credentials(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    for path in ("InboundMessageNotification", "DeliveryInfoNotification", "MessageStatusNotification"):
        resp = await bot.client.post(
            f"/maap/courier/{path}/{URI}", data=b"<x/>", headers=username_header(USERNAME, "wrong")
        )
        assert resp.status == 401
