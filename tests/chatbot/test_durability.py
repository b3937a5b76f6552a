"""Exactly-once under failure: MaaP outages, slow MaaPs, `kill -9` of the server mid-turn, and two
server processes sharing one Redis with racing deliveries. Servers here are real processes
(`python -m mingpian serve`, configured by environment) where the scenario needs them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mingpian.settings import PROJECT_ROOT
from simulators.maap import Fault, Simulator
from tests.chatbot.support import (
    OPERATOR,
    USER,
    WAYBILL,
    chatbot_settings,
    start_bot,
    start_server,
)
from tests.support.processes import free_port

T = Any
COUNTER_FLOW = """
title: 计数测试
signature: 测试
start: main
nodes:
  main:
    rules:
      - any: true
        set:
          n: "{{ ctx.get('n', 0) + 1 }}"
        reply:
          text: "第{{ ctx.n }}条：{{ event.text }}"
"""


def counter_bots(tmp: Path) -> Path:
    root = tmp / "chatbots"
    shutil.copytree(PROJECT_ROOT / "chatbots", root)
    (root / "counter").mkdir()
    (root / "counter" / "flow.yaml").write_text(COUNTER_FLOW, "utf-8")
    return root


def check_counter_replies(s: Simulator, users: list[str], per_user: int) -> None:
    """Each user got replies 第1条..第N条 in order, each of their messages answered exactly once."""
    for u in users:
        got = [r.text for r in s.received if r.user == u]
        assert [t.split("：")[0] for t in got] == [f"第{i}条" for i in range(1, per_user + 1)], (u, got)
        assert sorted(t.split("：")[1] for t in got) == sorted(f"{u[-4:]}-{i}" for i in range(per_user))
    stats = s.stats()
    assert stats["duplicateReplies"] == 0 and stats["lost"] == 0, stats


async def test_maap_outage_then_recovery_delivers_all_in_order(
    aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    s.fault = Fault(mode="error", status=503)  # the MaaP is down
    other = "tel:+8613700000000"
    taps = [
        f"track:{WAYBILL}",
        f"call_courier:{WAYBILL}",
        f"reschedule:{WAYBILL}",
        f"slot:{WAYBILL}:locker",
        f"track:{WAYBILL}",
    ]
    for pb in taps:
        assert await s.tap(USER, pb) == 200  # acked at once: the replies wait in the outbox
        assert await s.tap(other, f"track:{WAYBILL}") == 200
    await asyncio.sleep(0.8)  # several failed attempts with backoff
    assert s.received == []
    s.fault = Fault(mode="errorcode", error_code=-1, remaining=3)  # "busy" replies, then healthy
    got = await s.wait_for(10, timeout=15)
    mine = [r.text.split("\n")[0] for r in got if r.user == USER]
    assert mine == [
        f"运单 {WAYBILL}：派送中",
        mine[1],
        "请选择新的派送时间",
        "改约成功",
        f"运单 {WAYBILL}：派送中",
    ]
    assert mine[1].startswith("正在为您呼叫快递员")
    assert len([r for r in got if r.user == other]) == 5
    assert s.stats()["duplicateReplies"] == 0 and s.stats()["lost"] == 0
    info = await (await bot.client.get(f"/api/chatbot/messages/{got[0].message_id}", headers=OPERATOR)).json()
    assert info["state"] == "sent" and info["attempts"] > 1


async def test_slow_maap_resends_carry_the_same_message_id(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path, maap_timeout=0.3)
    s = bot.sim
    s.fault = Fault(mode="lateack", delay=0.6, remaining=2)  # accepted, but the answer comes too late
    await s.tap(USER, f"track:{WAYBILL}")
    await s.tap(USER, f"reschedule:{WAYBILL}")
    got = await s.wait_for(2, timeout=10)
    await asyncio.sleep(0.7)
    assert [r.text.split("\n")[0] for r in got] == [f"运单 {WAYBILL}：派送中", "请选择新的派送时间"]
    stats = s.stats()
    assert stats["replies"] == 2 and stats["duplicateReplies"] == 0
    assert stats["resendsDropped"] >= 1  # the resend was recognised by its ID and dropped


async def test_token_invalidated_by_the_maap_is_refreshed(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    await s.tap(USER, f"track:{WAYBILL}")
    await s.wait_for(1)
    s.tokens.clear()  # e.g. someone else requested a new token
    await s.tap(USER, f"reschedule:{WAYBILL}")
    assert len(await s.wait_for(2)) == 2
    assert s.token_requests == 2


async def _run_users(
    s: Simulator, webhooks: list[str], users: list[str], per_user: int, retry_for: float = 30.0
) -> None:
    """Each user sends per_user messages one after another (the next once the previous is acked),
    users in parallel; message i goes to webhooks[i % len(webhooks)]."""

    async def one(u: str) -> None:
        for i in range(per_user):
            body = s.message(u, text=f"{u[-4:]}-{i}")
            status = await s.deliver(
                body, webhook=webhooks[i % len(webhooks)], retry_for=retry_for, timeout=5
            )
            assert status == 200

    await asyncio.gather(*(one(u) for u in users))


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_kill_9_mid_turn_then_restart_loses_and_duplicates_nothing(
    store: str, request: pytest.FixtureRequest, sim: T, tmp_path: Path
) -> None:
    s, maap = sim
    extra: dict[str, Any] = {"store": store}
    if store == "redis":
        # A killed process's leases expire after outbox_lease; short here so the test is quick.
        extra.update(redis_url=request.getfixturevalue("redis_url"), outbox_lease=1.0)
    settings = chatbot_settings(
        tmp_path, str(maap.make_url("")).rstrip("/"), chatbot_dir=counter_bots(tmp_path), **extra
    )
    port = free_port()
    log = tmp_path / "server.log"
    s.webhook = f"http://127.0.0.1:{port}/maap/counter"
    proc = start_server(settings, port, log)
    users = [f"tel:+86139000{i:05d}" for i in range(16)]
    per_user = 30
    total = len(users) * per_user
    s.fault = Fault(mode="slow", delay=0.05)  # keep some replies in the outbox when the kill lands
    traffic = asyncio.ensure_future(_run_users(s, [s.webhook], users, per_user))
    try:
        for share in (0.2, 0.45, 0.7):
            # Kill when a share of the messages is acknowledged: turns and sends are in flight.
            while len(s.acked) < share * total:
                assert not traffic.done()
                await asyncio.sleep(0.005)
            assert not traffic.done(), "the kill must land while messages are flowing"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            await asyncio.sleep(0.2)  # deliveries fail meanwhile, and are retried by the "platform"
            proc = start_server(settings, port, log)
        await asyncio.wait_for(traffic, 60)
        s.fault = Fault()
        await s.wait_for(len(users) * per_user, timeout=30)
        await asyncio.sleep(0.3)
        check_counter_replies(s, users, per_user)
        assert len(s.received) == len(users) * per_user
    finally:
        traffic.cancel()
        proc.kill()
        proc.wait()
    assert "Traceback" not in log.read_text("utf-8", "replace")


@pytest.mark.slow
async def test_two_processes_one_redis_racing_deliveries(sim: T, tmp_path: Path, redis_url: str) -> None:
    s, maap = sim
    settings = chatbot_settings(
        tmp_path,
        str(maap.make_url("")).rstrip("/"),
        chatbot_dir=counter_bots(tmp_path),
        store="redis",
        redis_url=redis_url,
        outbox_lease=5.0,
    )
    s.single_token = True  # the CT/CU rule: a new access token cancels the previous one
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(ports):
            procs.append(
                start_server(settings.with_(data_dir=tmp_path / f"var{i}"), port, tmp_path / f"server{i}.log")
            )
        hooks = [f"http://127.0.0.1:{p}/maap/counter" for p in ports]
        users = [f"tel:+86137000{i:05d}" for i in range(8)]
        per_user = 10

        async def racing(u: str) -> None:
            # Messages 2k and 2k+1 of a user are sent at the same moment, one to each process,
            # and each is ALSO delivered twice at once (the platform's duplicate), to both.
            for k in range(0, per_user, 2):
                a = s.message(u, text=f"{u[-4:]}-{k}")
                b = s.message(u, text=f"{u[-4:]}-{k + 1}")
                statuses = await asyncio.gather(
                    s.deliver(a, webhook=hooks[0], retry_for=10),
                    s.deliver(a, webhook=hooks[1], retry_for=10),
                    s.deliver(b, webhook=hooks[1], retry_for=10),
                    s.deliver(b, webhook=hooks[0], retry_for=10),
                )
                assert statuses == [200, 200, 200, 200]

        await asyncio.gather(*(racing(u) for u in users))
        await s.wait_for(len(users) * per_user, timeout=30)
        await asyncio.sleep(0.5)
        check_counter_replies(s, users, per_user)
        assert len(s.received) == len(users) * per_user
        # Both processes used ONE token, fetched once and shared through Redis.
        assert s.token_requests == 1 and s.rejected == 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    for i in range(2):
        assert "Traceback" not in (tmp_path / f"server{i}.log").read_text("utf-8", "replace")


async def test_redis_store_dedupes_and_survives_an_outage_in_order(
    redis_url: str, aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    # (redis_url first: fixtures are torn down in reverse, so the app closes before redis-server stops)
    bot = await start_bot(aiohttp_client, sim, tmp_path, store="redis", redis_url=redis_url)
    s = bot.sim
    body = s.message(USER, postback=f"track:{WAYBILL}")
    s.fault = Fault(mode="error", status=502)
    assert await asyncio.gather(*(s.deliver(body) for _ in range(3))) == [200, 200, 200]
    for pb in (f"reschedule:{WAYBILL}", f"slot:{WAYBILL}:tomorrow-pm", f"track:{WAYBILL}"):
        assert await s.tap(USER, pb) == 200
    await asyncio.sleep(0.5)
    assert s.received == []
    s.fault = Fault()
    got = await s.wait_for(4, timeout=15)
    await asyncio.sleep(0.3)
    assert [r.text.split("\n")[0] for r in s.received] == [
        f"运单 {WAYBILL}：派送中",
        "请选择新的派送时间",
        "改约成功",
        f"运单 {WAYBILL}：派送中",
    ]
    assert s.stats()["duplicateReplies"] == 0 and s.stats()["lost"] == 0
    # The head (the first reply) took the outage; the replies queued behind it waited their turn.
    info = await (await bot.client.get(f"/api/chatbot/messages/{got[0].message_id}", headers=OPERATOR)).json()
    assert info["state"] == "sent" and info["attempts"] >= 2, info
    info = await (await bot.client.get(f"/api/chatbot/messages/{got[2].message_id}", headers=OPERATOR)).json()
    assert info["state"] == "sent" and info["attempts"] == 1, info
