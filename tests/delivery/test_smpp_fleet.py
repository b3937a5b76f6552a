"""SMPP on a fleet of workers, against the gateway simulator's SMSC: several binds per process
with submits spread over the bound ones, an account bind limit, the account's submit rate
(in-process, and shared through one real redis-server by two processes' limiters), the SMPP
window, and throttling (0x58) answered with a pause and a resend — never a loss or a double."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from delivery.gateways import smpp_pdu as smpp
from delivery.gateways.smpp_pdu import ShortMessage
from delivery.gateways.smpp_pool import SmppPool
from delivery.gateways.smpp_rate import LocalRate, RedisRate, SubmitRate
from infra.redispipe import AutoPipeline
from mingpian.api.delivery import delivery_key
from simulators.smsc import GatewaySim, Rule
from tests.support.processes import free_port

from .support import AppFactory, call, numbered_sm, seed_doc, settle

PoolFactory = Callable[..., SmppPool]


def sm(n: int) -> ShortMessage:
    return numbered_sm(b"hi", to=f"+86139{n:08d}")


def most_in_one_second(times: list[float]) -> int:
    """The most timestamps in any window (t - 1 s, t]."""
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.fixture
async def pools(gateway: GatewaySim) -> AsyncIterator[PoolFactory]:
    """Build and start pools bound to the simulator; all closed at the end."""
    made: list[SmppPool] = []
    receipts: list[ShortMessage] = []

    async def on_deliver(m: ShortMessage) -> None:
        receipts.append(m)

    def make(port: int | None = None, **kw: Any) -> SmppPool:
        kw.setdefault("timeout", 1.0)
        pool = SmppPool("127.0.0.1", port or gateway.smpp_port, "mingpian", "secret", on_deliver, **kw)
        pool.start()
        made.append(pool)
        return pool

    make.receipts = receipts  # type: ignore[attr-defined]
    yield make
    await asyncio.gather(*(p.close() for p in made))


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- binds ----------------------------------------------------------------------------------------
async def test_two_binds_are_both_bound_and_share_submits_and_receipts(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    gateway.spread_deliveries = True
    pool = pools(binds=2)
    assert await pool.wait_bound(3, count=2)
    assert gateway.bound("mingpian") == 2 and pool.health()["bound"] == 2
    results = await asyncio.gather(*(pool.submit(sm(i)) for i in range(10)))
    assert all(r.ok for r in results) and len({r.message_id for r in results}) == 10
    per_bind = Counter(r.bind for r in gateway.received)
    assert sorted(per_bind.values()) == [5, 5]  # round-robin over the two sessions
    assert [s["submits"] for s in pool.health()["sessions"]] == [5, 5]
    receipts: list[ShortMessage] = pools.receipts  # type: ignore[attr-defined]
    await eventually(lambda: len(receipts) == 10)  # one handler for both sessions' receipts
    assert sorted(gateway.deliveries.values()) == [5, 5]


async def test_a_bind_over_the_accounts_limit_is_refused_once_in_the_log_and_the_rest_work(
    gateway: GatewaySim, pools: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.bind_limits["mingpian"] = 1
    caplog.set_level(logging.INFO, "mingpian.delivery.smpp")
    pool = pools(binds=2)
    assert await pool.wait_bound(3)
    await eventually(lambda: gateway.binds_refused >= 3)  # refused, retried with backoff, refused
    health = pool.health()
    assert health["bound"] == 1
    refused = [s for s in health["sessions"] if s["state"] == "refused"]
    assert len(refused) == 1 and "bind refused: command_status 0x0D" in refused[0]["detail"]
    assert "bind limit" in refused[0]["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and ("bind 2/2" in warnings[0] or "bind 1/2" in warnings[0])
    assert "delivery_smpp_binds × server processes" in warnings[0]
    results = await asyncio.gather(*(pool.submit(sm(i)) for i in range(4)))
    assert all(r.ok for r in results) and len(gateway.submits) == 4
    del gateway.bind_limits["mingpian"]  # the account allows more binds: the refused one binds
    assert await pool.wait_bound(6, count=2)


async def test_with_no_session_bound_a_submit_fails_retryable_as_not_bound(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    gateway.bind_limits["mingpian"] = 0
    pool = pools(binds=2, wait=0.3)
    t0 = time.monotonic()
    res = await pool.submit(sm(1))
    assert (res.status, res.detail, res.sent) == (smpp.STATUS_SYSERR, "SMPP not bound", False)
    assert smpp.STATUS_SYSERR in smpp.RETRYABLE and 0.25 < time.monotonic() - t0 < 1.0
    assert gateway.received == []


async def test_after_the_smsc_drops_every_session_they_rebind_and_submits_go_on(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    pool = pools(binds=2)
    assert await pool.wait_bound(3, count=2)
    assert (await pool.submit(sm(1))).ok
    gateway.bind_limits["mingpian"] = 0  # down for a moment: nothing may bind
    gateway.kick()
    await eventually(lambda: pool.bound == 0)
    later = asyncio.ensure_future(pool.submit(sm(2)))  # waits for a session to come back
    await asyncio.sleep(0.1)
    assert not later.done()
    del gateway.bind_limits["mingpian"]
    assert (await later).ok
    assert await pool.wait_bound(3, count=2) and gateway.binds == 4
    assert sorted(s["destination"] for s in gateway.submits) == ["13900000001", "13900000002"]


# -- the account's rate ---------------------------------------------------------------------------
async def test_the_local_rate_spaces_a_burst_to_n_per_second(gateway: GatewaySim, pools: PoolFactory) -> None:
    n = 20
    # what is measured is the spacing: a loaded machine may answer a submit later than the 1 s the
    # other tests allow, and that is no failure of the rate
    pool = pools(binds=2, rate=LocalRate(n), timeout=5.0)
    assert await pool.wait_bound(3, count=2)
    t0 = time.monotonic()
    results = await asyncio.gather(*(pool.submit(sm(i)) for i in range(30)))
    took = time.monotonic() - t0
    assert all(r.ok for r in results) and len(gateway.submits) == 30
    times = [r.at for r in gateway.received]
    assert most_in_one_second(times) <= n + 2  # a late wake-up may bring one or two closer
    assert took >= 29 / n * 0.95 and (max(times) - min(times)) >= 29 / n * 0.9


async def test_a_rate_shared_through_redis_holds_for_two_processes_together(
    gateway: GatewaySim, pools: PoolFactory, redis_url: str
) -> None:
    """Two processes' limiters (each its own Redis connection and pipeline) and sessions on one
    account: together the SMSC sees no more than the account's rate."""
    n, clients = 20, []
    limiters: list[SubmitRate] = []
    for _ in range(2):
        r = aioredis.Redis.from_url(redis_url, decode_responses=True)
        clients.append((r, AutoPipeline(r, {})))
        limiters.append(RedisRate(clients[-1][1], "mp:dl:smpp-rate:mingpian@test", n))
    a, b = pools(rate=limiters[0]), pools(rate=limiters[1])
    assert await a.wait_bound(3) and await b.wait_bound(3)
    results = await asyncio.gather(*((a if i % 2 else b).submit(sm(i)) for i in range(32)))
    assert all(r.ok for r in results) and len(gateway.submits) == 32
    times = [r.at for r in gateway.received]
    assert most_in_one_second(times) <= n + 2
    assert max(times) - min(times) >= 31 / n * 0.9
    assert len({r.bind for r in gateway.received}) == 2  # both processes sent
    for r, pipe in clients:
        await pipe.drain()
        await r.aclose()


async def test_a_rate_slot_beyond_the_wait_hands_the_submit_back_unsent(
    gateway: GatewaySim, pools: PoolFactory, redis_url: str
) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pipe = AutoPipeline(r, {})
    for rate in (LocalRate(2), RedisRate(pipe, "mp:dl:smpp-rate:mingpian@bound", 2)):
        gateway.reset()
        pool = pools(rate=rate, wait=0.2)
        assert await pool.wait_bound(3)
        first, second = await asyncio.gather(pool.submit(sm(1)), pool.submit(sm(2)))
        assert first.ok
        assert (second.status, second.sent) == (smpp.STATUS_THROTTLED, False)
        assert second.detail == "submit rate 2/s: no free slot before the deadline"
        assert smpp.STATUS_THROTTLED in smpp.RETRYABLE and len(gateway.received) == 1
        await asyncio.sleep(0.55)  # the next slot is free again
        assert (await pool.submit(sm(3))).ok
    await pipe.drain()
    await r.aclose()


async def test_an_unreachable_redis_hands_the_submit_back_unsent(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    r = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    pipe = AutoPipeline(r, {})
    pool = pools(rate=RedisRate(pipe, "mp:dl:smpp-rate:mingpian@gone", 5), wait=0.5)
    assert await pool.wait_bound(3)
    res = await pool.submit(sm(1))
    assert (res.status, res.sent) == (smpp.STATUS_THROTTLED, False) and res.status in smpp.RETRYABLE
    assert res.detail.startswith("submit rate: ConnectionError") and gateway.received == []
    await r.aclose()


async def test_the_fleets_rate_through_the_servers_settings(
    make_app: AppFactory, gateway: GatewaySim, redis_url: str, tmp_path: Any
) -> None:
    """Two servers (own SQLite each) with `delivery_counters=redis` and `delivery_smpp_rate`: the
    SMSC sees their submits together at no more than the rate, and every card is delivered."""
    n = 10
    seed = seed_doc(policy={"chain": ["ussd"], "timeouts": {"ussd": 5}})
    opts = {"delivery_counters": "redis", "redis_url": redis_url, "delivery_smpp_rate": float(n)}
    a = await make_app(seed, data_dir=tmp_path / "a", delivery_smpp_binds=2, **opts)
    b = await make_app(seed, data_dir=tmp_path / "b", **opts)
    assert await a.app[delivery_key].smpp.wait_bound(3, count=2)
    await asyncio.gather(
        *(call((a, b)[i % 2], f"f{i}", "ended", callee=f"+86137000000{i:02d}") for i in range(16))
    )
    for i in range(16):
        assert (await settle((a, b)[i % 2], f"f{i}:ended"))["state"] == "delivered"
    assert len(gateway.submits) == 16 and len(gateway.by_destination) == 16
    times = [r.at for r in gateway.received]
    assert most_in_one_second(times) <= n + 2 and max(times) - min(times) >= 15 / n * 0.9


# -- window and throttling ------------------------------------------------------------------------
async def test_a_session_keeps_at_most_window_submits_outstanding(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    gateway.answer_delay = 0.1
    pool = pools(window=2)
    assert await pool.wait_bound(3)
    t0 = time.monotonic()
    results = await asyncio.gather(*(pool.submit(sm(i)) for i in range(6)))
    assert all(r.ok for r in results)
    assert gateway.max_outstanding == 2 and time.monotonic() - t0 >= 0.3


async def test_throttled_submits_pause_then_go_through_once(gateway: GatewaySim, pools: PoolFactory) -> None:
    gateway.set_rules([Rule("reject", status=smpp.STATUS_THROTTLED, times=2)])
    pool = pools()
    assert await pool.wait_bound(3)
    res = await pool.submit(sm(1))
    assert res.ok
    assert [r.status for r in gateway.received] == [0x58, 0x58, 0]
    assert len(gateway.submits) == 1  # taken once
    gaps = [b.at - a.at for a, b in zip(gateway.received, gateway.received[1:], strict=False)]
    # the session paused after each: at least half of 50 ms, then of 100 ms (equal jitter)
    assert gaps[0] >= 0.024 and gaps[1] >= 0.049
    assert pool.sessions[0].hold() == 0  # an accepted submit ended the backoff


async def test_queue_full_moves_the_resend_to_a_session_that_is_not_pausing(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    gateway.set_rules([Rule("reject", status=smpp.STATUS_MSGQFUL, times=1)])
    pool = pools(binds=2)
    assert await pool.wait_bound(3, count=2)
    assert (await pool.submit(sm(1))).ok
    (first, second) = gateway.received
    assert (first.status, second.status) == (0x14, 0) and first.bind != second.bind
    assert second.at - first.at < 0.02  # no pause needed: the other session was free


async def test_throttling_past_the_wait_is_handed_back_retryable(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    gateway.set_rules([Rule("reject", status=smpp.STATUS_THROTTLED)])
    pool = pools(wait=0.3)
    assert await pool.wait_bound(3)
    res = await pool.submit(sm(1))
    assert res.status == smpp.STATUS_THROTTLED and res.status in smpp.RETRYABLE
    assert res.detail.startswith("command_status 0x58 (throttled; ")
    assert gateway.submits == [] and 2 <= len(gateway.received) <= 8  # paused between tries


async def test_an_smsc_rate_limit_throttles_a_burst_and_every_message_gets_through_once(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    """No rate of our own: the SMSC answers 0x58 past 10 a second; the sessions pause and resend
    until each message is taken, once."""
    gateway.rate_limits["mingpian"] = 10
    pool = pools(binds=2, wait=8.0)
    assert await pool.wait_bound(3, count=2)
    results = await asyncio.gather(*(pool.submit(sm(i)) for i in range(15)))
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert gateway.throttled > 0
    assert sorted(gateway.by_destination.values()) == [1] * 15


async def test_a_throttled_card_is_delivered_on_its_channel(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("reject", channel="ussd", status=smpp.STATUS_THROTTLED, times=2)])
    client = await make_app(delivery_smpp_binds=2)
    await call(client, "t1", "ended")
    d = await settle(client, "t1:ended")
    assert (d["state"], d["channel"]) == ("delivered", "ussd")
    assert [a["channel"] for a in d["attempts"]] == ["ussd"]
    assert len(gateway.submits) == 1 and [r.status for r in gateway.received] == [0x58, 0x58, 0]


async def test_cards_keep_going_out_after_the_smsc_drops_both_binds(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app(delivery_smpp_binds=2)
    service = client.app[delivery_key]
    assert await service.smpp.wait_bound(3, count=2)
    await call(client, "k1", "ended")
    assert (await settle(client, "k1:ended"))["state"] == "delivered"
    gateway.kick()
    await call(client, "k2", "ended", callee="+8613911112222")
    d = await settle(client, "k2:ended")
    assert (d["state"], d["channel"]) == ("delivered", "ussd")
    assert await service.smpp.wait_bound(3, count=2) and gateway.binds == 4


# -- what a chain needs to know about a lost session ----------------------------------------------
async def test_a_submit_whose_session_closes_before_its_answer_is_unanswered_not_unsent(
    gateway: GatewaySim, pools: PoolFactory
) -> None:
    """The SMSC took it and the answer was lost: the chain waits for its receipt rather than
    sending the card again on the next channel (delivery/chain.py)."""
    gateway.answer_delay = 1.0
    pool = pools()
    assert await pool.wait_bound(3)
    pending = asyncio.ensure_future(pool.submit(sm(1)))
    await eventually(lambda: len(gateway.submits) == 1)
    gateway.kick()
    res = await pending
    assert (res.ok, res.sent, res.answered) == (False, True, False)
    assert len(gateway.submits) == 1  # not resent on another session


async def test_the_time_with_no_session_bound_is_counted(gateway: GatewaySim, pools: PoolFactory) -> None:
    """An attempt's deadline stands still for it: the SMSC holds a lost session's receipts."""
    pool = pools(binds=2)
    assert await pool.wait_bound(3, count=2)
    t0 = time.time()
    assert pool.unbound(t0, time.time()) == 0
    gateway.bind_limits["mingpian"] = 0
    gateway.kick()
    await eventually(lambda: pool.bound == 0)
    await asyncio.sleep(0.3)
    del gateway.bind_limits["mingpian"]
    assert await pool.wait_bound(3)
    t1 = time.time()
    assert 0.3 <= pool.unbound(t0, t1) <= t1 - t0
    assert pool.unbound(t1, t1 + 5) == 0  # bound again: no more counted
