"""The table of the platforms' answer codes (chatbot/codes.py) and what the client and the outbox
do with each: refresh the token and retry once, retry, back off, wait for a quota to renew,
give up on refused content — against the MaaP simulator failing on command."""

from __future__ import annotations

import asyncio
import calendar
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from chatbot.codes import CSP_CODES, csp_rule, http_rule, renewal_wait
from chatbot.maap import MaapClient
from mingpian.api.chatbot import runtime_key
from simulators.maap import Fault, Simulator

from .support import USER, WAYBILL, start_bot


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (0, "ok"),
        (-1, "retry"),
        (20002, "fail"),
        (30001, "wait"),
        (30002, "wait"),
        (30003, "wait"),
        (30004, "wait"),
        (40001, "refresh"),
        (40014, "refresh"),
        (41001, "refresh"),
        (42001, "refresh"),
        (45001, "backoff"),
        (3, "blocked"),
        (6, "blocked"),
        (99999, "fail"),
    ],
)
def test_every_csp_code_has_its_action(code: int, action: str) -> None:
    assert csp_rule(200, code).action == action


def test_http_statuses_and_the_daily_and_monthly_renewals() -> None:
    assert [http_rule(s).action for s in (200, 201, 202, 204)] == ["ok"] * 4
    assert [http_rule(s).action for s in (401, 429, 451, 500, 503, 408, 400, 404)] == [
        "refresh", "backoff", "blocked", "retry", "retry", "retry", "fail", "fail",
    ]  # fmt: skip
    assert csp_rule(401, 0).action == "refresh" and csp_rule(503, 0).action == "retry"
    assert {CSP_CODES[c].renews for c in (30001, 30003)} == {"day"}
    assert {CSP_CODES[c].renews for c in (30002, 30004)} == {"month"}
    # 23:00 China time on 31 December: the day renews in an hour, the month too
    now = calendar.timegm((2026, 12, 31, 15, 0, 0, 0, 0, 0))
    assert renewal_wait("day", now) == 3600 and renewal_wait("month", now) == 3600
    # 10:00 China time on 15 November: 14 h to midnight, 15 days and 14 h to 1 December
    now = calendar.timegm((2026, 11, 15, 2, 0, 0, 0, 0, 0))
    assert renewal_wait("day", now) == 14 * 3600 and renewal_wait("month", now) == 15 * 86400 + 14 * 3600


async def _client(server: TestServer, sim: Simulator) -> MaapClient:
    return MaapClient(
        aiohttp.ClientSession(), str(server.make_url("")).rstrip("/"), app_id=sim.app_id, app_key=sim.app_key
    )


def _body(mid: str) -> dict[str, Any]:
    return {
        "messageId": mid, "destinationAddress": [USER], "senderAddress": "sip:106500@botplatform.rcs.chinaunicom.cn",
        "conversationId": "c", "contributionId": f"x-{mid}", "smsSupported": False,
        "messageList": [{"contentType": "text/plain", "contentText": "您好"}],
    }  # fmt: skip


async def test_the_client_refreshes_on_a_token_code_retries_once_and_honours_the_table(
    sim: tuple[Simulator, TestServer],
) -> None:
    s, server = sim
    c = await _client(server, s)
    try:
        assert (await c.send(_body("m0"))).outcome == "ok" and s.token_requests == 1
        s.fault = Fault(mode="errorcode", error_code=42001, remaining=1)  # expired: refresh, retry once
        assert (await c.send(_body("m1"))).outcome == "ok" and s.token_requests == 2
        s.fault = Fault(mode="errorcode", error_code=40014)  # invalid every time: one retry, no more
        r = await c.send(_body("m2"))
        assert r.outcome == "retry" and "access token invalid" in r.detail and s.token_requests == 3
        s.fault = Fault(mode="errorcode", error_code=30001, remaining=1)
        r = await c.send(_body("m3"))
        assert r.outcome == "retry" and r.hold and 0 < (r.retry_after or 0) <= 86400
        assert "daily quota" in r.detail
        s.fault = Fault(mode="errorcode", error_code=6, remaining=1)
        r = await c.send(_body("m4"))
        assert r.outcome == "fail" and r.blocked and "content refused" in r.detail
        s.fault = Fault(mode="errorcode", error_code=45001, remaining=1)
        r = await c.send(_body("m5"))
        assert r.outcome == "retry" and not r.hold
    finally:
        await c.close()
        await c.session.close()


async def test_the_client_sends_to_the_url_the_token_answer_names(sim: tuple[Simulator, TestServer]) -> None:
    s, server = sim
    s.token_url_alt = True  # sends that ignore the token's url are refused by the simulator
    c = await _client(server, s)
    try:
        assert (await c.send(_body("u1"))).outcome == "ok"
    finally:
        await c.close()
        await c.session.close()
    assert s.rejected == 0 and len(s.received) == 1


async def test_a_reply_waits_for_the_daily_quota_and_refused_content_is_reported(
    aiohttp_client: Any, sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    s.fault = Fault(mode="errorcode", error_code=30001, remaining=1)
    assert await s.tap(USER, f"track:{WAYBILL}") == 200
    runtime = bot.client.app[runtime_key]
    store = runtime.store
    for _ in range(200):
        row = store.db.execute("SELECT message_id, next_at, last_error FROM outbox").fetchone()  # type: ignore[attr-defined]
        if row and row[2]:
            break
        await asyncio.sleep(0.02)
    mid, next_at, error = row
    assert "daily quota" in error and next_at - time.time() > 60  # not the 0.4 s backoff cap
    assert s.received == []
    # refused content: given up at once, the reason reported on the message
    s.fault = Fault(mode="errorcode", error_code=3, remaining=1)
    assert await s.tap("tel:+8613800000002", f"track:{WAYBILL}") == 200
    for _ in range(200):
        failed = store.db.execute("SELECT last_error FROM outbox WHERE state = 'failed'").fetchone()  # type: ignore[attr-defined]
        if failed:
            break
        await asyncio.sleep(0.02)
    assert failed and "content refused" in failed[0]
    assert (await runtime.message(mid))["lastError"].startswith("daily quota")  # type: ignore[index]
