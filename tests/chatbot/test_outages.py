"""Redis stopped under the chatbot's webhooks: every callback that needs the store is answered
503 with `Retry-After` (the platform retries it), the outage is logged once rather than once per
callback, and once Redis is back the same callbacks are served."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from infra.outage import outages
from simulators.servers import RedisServer

from .support import USER, WAYBILL, start_bot

T = Any


async def _tap(bot: T, n: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = bot.sim.message(USER, postback=f"track:{WAYBILL}", message_id=f"outage-{n}")
    raw = json.dumps(body, ensure_ascii=False).encode()
    url = f"/maap/courier/messageNotification/{bot.sim.chatbot}/messages"
    resp = await bot.client.post(url, data=raw, headers=bot.sim.sign(raw))
    return resp.status, dict(resp.headers), await resp.json(content_type=None) if resp.status != 204 else {}


async def test_redis_outage_answers_webhooks_503_and_logs_it_once(
    redis_server: RedisServer, aiohttp_client: T, sim: T, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outages.clear()  # the record is the process's: this test starts with no outage on it
    bot = await start_bot(aiohttp_client, sim, tmp_path, store="redis", redis_url=redis_server.url)
    assert (await _tap(bot, 0))[0] == 200
    caplog.set_level(logging.INFO)
    caplog.clear()
    redis_server.stop()
    answers = [await _tap(bot, n) for n in range(1, 21)]
    assert {a[0] for a in answers} == {503}, answers[:3]
    for _, headers, body in answers:
        assert headers.get("Retry-After", "").isdigit()
        assert body["error"] == "unavailable" and body["message"]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].exc_info is None and "Redis" in loud[0].getMessage()
    redis_server.start()
    statuses = [(await _tap(bot, n))[0] for n in range(1, 21)]  # the platform's retries
    assert set(statuses) == {200}


async def test_a_frozen_redis_answers_webhooks_503_in_bounded_time(
    redis_server: RedisServer, aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    """SIGSTOP on redis-server: its sockets stay open and nothing answers (a hung host). Every
    callback is refused within seconds, and served again after SIGCONT."""
    outages.clear()
    bot = await start_bot(aiohttp_client, sim, tmp_path, store="redis", redis_url=redis_server.url)
    assert (await _tap(bot, 0))[0] == 200
    redis_server.freeze()
    try:
        timed = []
        for n in range(1, 4):
            start = time.monotonic()
            answer = await asyncio.wait_for(_tap(bot, n), 45)
            timed.append((time.monotonic() - start, answer))
    finally:
        redis_server.thaw()
    assert all(elapsed < 15 for elapsed, _ in timed), [t for t, _ in timed]
    assert {a[0] for _, a in timed} == {503}, timed
    assert all(a[1].get("Retry-After", "").isdigit() for _, a in timed)
    assert [(await _tap(bot, n))[0] for n in range(1, 4)] == [200] * 3
