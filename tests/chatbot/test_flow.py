"""The courier and bank conversations end to end: simulator → webhook → flow → outbox → simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chatbot.support import USER, WAYBILL, start_bot

T = Any


async def test_courier_conversation_end_to_end(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    # 1. The hang-up card's "查询物流" tap → the tracking card with its timeline.
    assert await s.tap(USER, f"track:{WAYBILL}") == 200
    [tracking] = await s.wait_for(1)
    assert tracking.kind == "card"
    assert f"运单 {WAYBILL}：派送中" in tracking.text
    assert "● 11-25 09:12 【深圳南山科技园营业点】" in tracking.text
    assert "○ 11-24 16:31 顺丰速运已收取快件（广州天河区）" in tracking.text
    assert tracking.postbacks == [f"call_courier:{WAYBILL}", f"reschedule:{WAYBILL}", f"track:{WAYBILL}"]
    body = tracking.body
    assert body["destinationAddress"] == [USER]
    assert body["senderAddress"] == "sip:106500@botplatform.rcs.chinaunicom.cn"
    assert body["smsSupported"] is True and body["smsContent"].startswith("【顺丰速运】运单")
    assert body["serviceCapability"][0]["capabilityId"] == "ChatbotSA"
    # 2. "联系快递员" → a text naming the masked courier.
    await s.tap(USER, f"call_courier:{WAYBILL}")
    call = (await s.wait_for(2))[1]
    assert call.kind == "text" and "王*国" in call.text and "138****8000" in call.text
    # 3. "改约派送" → the slot chooser.
    await s.tap(USER, f"reschedule:{WAYBILL}")
    chooser = (await s.wait_for(3))[2]
    assert chooser.text.startswith("请选择新的派送时间")
    assert f"slot:{WAYBILL}:tomorrow-am" in chooser.postbacks
    # 4. A legacy phone answers with a number from the degraded SMS: "2" = 明天 09:00-12:00.
    assert "回复2 明天 09:00-12:00" in chooser.body["smsContent"]
    await s.say(USER, "2")
    confirm = (await s.wait_for(4))[3]
    assert confirm.text.startswith("改约成功")
    assert f"运单 {WAYBILL} 将于【明天 09:00-12:00】派送。" in confirm.text
    assert "改约单号：GY6789012301" in confirm.text  # GY + last 8 of the waybill + 1st reschedule
    # Every reply answers its own tap, and nothing was lost or doubled.
    stats = s.stats()
    assert stats["replies"] == 4 and stats["duplicateReplies"] == 0 and stats["lost"] == 0
    assert stats["tokenRequests"] == 1  # the access token is cached
    metrics = await (await bot.client.get("/metrics")).text()
    assert 'mingpian_chatbot_events_total{bot="courier",result="ok"} 4' in metrics
    sent = [
        line for line in metrics.splitlines() if line.startswith('mingpian_chatbot_sends_total{outcome="ok"}')
    ]
    assert sent and float(sent[0].split()[-1]) >= 4  # a resend after a slow answer also counts


async def test_free_text_and_waybill_entry(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    await s.say(USER, "你好")
    await s.say(USER, "我想查件")
    await s.say(USER, "abc")
    await s.say(USER, "sf9876543210987")
    got = await s.wait_for(4)
    assert [r.text.split("\n")[0] for r in got] == [
        "抱歉，没有理解您的意思。回复“查件”查询物流，或点击卡片上的按钮。",
        "请发送您的运单号（如 SF1234567890123），我们为您查询物流。",
        "运单号格式不对，请发送以字母开头的运单号，如 SF1234567890123。",
        "运单 SF9876543210987：运输中",
    ]


async def test_bank_callback_flow(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path, bot="bank")
    s = bot.sim
    await s.tap(USER, "bank:later:6688")
    [chooser] = await s.wait_for(1)
    assert "关于尾号6688信用卡账单分期办理确认" in chooser.text
    await s.tap(USER, "bank:slot:6688:tomorrow-pm")
    confirm = (await s.wait_for(2))[1]
    assert confirm.text.startswith("回电预约成功")
    assert "我们将在【明天 14:00-18:00】通过 95555 回电" in confirm.text
    await s.tap(USER, "bank:later:6688")
    await s.say(USER, "4")  # numbered reply: 不用回电了
    cancel = (await s.wait_for(4))[3]
    assert cancel.text.startswith("已为您取消回电")


async def test_gsma_send_dialect_with_oauth2(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path, maap_dialect="gsma")
    s = bot.sim
    await s.tap(USER, f"track:{WAYBILL}")
    await s.tap(USER, f"call_courier:{WAYBILL}")
    got = await s.wait_for(2)
    assert got[0].text.startswith(f"运单 {WAYBILL}：派送中") and got[1].kind == "text"
    gsma = got[0].body["gsma"]
    assert gsma["messageContact"]["userContact"] == USER
    assert "generalPurposeCard" in gsma["RCSMessage"]["richcardMessage"]["message"]
    assert s.token_requests == 1  # one OAuth2 client-credentials token, cached
