"""Redis fails over under load: two real `mingpian serve` workers (two hosts of a fleet) on
PostgreSQL and a Redis master with two replicas watched by three Redis Sentinels (`redis_url =
redis+sentinel://…`), call events arriving steadily. The master is killed (SIGKILL, as when its
host dies); the sentinels promote a replica and the workers follow them there. While Redis is
away what needs it is answered 503 with Retry-After (never 500), each worker logs the outage
once, and after it no card has been sent twice and no package spent past its units: the charges
were replicated before they counted (`redis_wait_replicas = 1`), so the promoted replica has
every one the ledger has."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from redis.exceptions import RedisError

from delivery.metering.redis import MASTER_CHECK
from mingpian.api.delivery import delivery_key
from simulators.faults import Figures
from simulators.sentinel import SentinelGroup
from simulators.smsc import GatewaySim
from tests.support.processes import free_port, serve
from tests.support.templates import TEMPLATES

from .support import OPERATOR, SF_KEY, SF_LINE, AppFactory, auth, call, seed_doc, settle

UNITS = 100  # the package: more than the calls before the kill, fewer than all the calls
RATE = 20.0  # call events per second
TARGET = 15.0  # seconds from the kill to the first card out again (of an event sent after it), at most


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "redis", replicas=2, sentinels=3, down_after=1.0)
    await asyncio.to_thread(group.start)
    yield group
    group.stop()


def _callee(i: int) -> str:
    return f"+86137{i:08d}"


class Traffic:
    """Call events at a steady rate, each a fresh call to a fresh callee; an event answered 503 is
    sent again after its Retry-After, as a PBX's integration would. Meanwhile the package balances
    (which Redis holds) are read, the other kind of request an outage answers 503."""

    def __init__(self, http: aiohttp.ClientSession, bases: list[str]) -> None:
        self.http, self.bases = http, bases
        self.answers: list[tuple[float, str, int, str | None]] = []  # (time, kind, status, Retry-After)
        self.accepted: list[str] = []
        self.sent: dict[str, float] = {}  # callee (as the SMSC sees it) → when its call event was first sent
        self.stopped = False

    async def _send(self, i: int) -> None:
        body = {"call_id": f"f{i}", "caller": SF_LINE, "callee": _callee(i), "phase": "ended"}
        base = self.bases[i % len(self.bases)]  # spread over the workers
        self.sent[_callee(i)[3:]] = time.time()
        while True:
            async with self.http.post(f"{base}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                self.answers.append((time.time(), "call", resp.status, resp.headers.get("Retry-After")))
                if resp.status in (200, 202):
                    self.accepted.append(f"f{i}")
                    return
                await resp.read()
                await asyncio.sleep(min(float(resp.headers.get("Retry-After") or 1), 0.5))

    async def calls(self) -> None:
        sends = []
        i = 0
        while not self.stopped:
            sends.append(asyncio.create_task(self._send(i)))
            i += 1
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*sends)

    async def balances(self) -> None:
        n = 0
        while not self.stopped:
            n += 1
            url = f"{self.bases[n % len(self.bases)]}/api/enterprises/sf/report"
            async with self.http.get(url, headers=auth(SF_KEY)) as resp:
                await resp.read()
                self.answers.append((time.time(), "report", resp.status, resp.headers.get("Retry-After")))
            await asyncio.sleep(0.1)


async def _settled(http: aiohttp.ClientSession, base: str, call_id: str) -> dict[str, Any]:
    for _ in range(600):
        async with http.get(f"{base}/api/calls/{call_id}", headers=auth(OPERATOR)) as resp:
            d = (await resp.json())["deliveries"][0]
        if d["state"] != "active":
            return d  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{call_id} still active: {d}")


def _cards_after(gateway: GatewaySim, traffic: Traffic, killed: float) -> list[float]:
    """When the cards of call events sent after the kill went out (each needed the new master
    for its charge), in order."""
    return sorted(s["at"] for s in gateway.submits if traffic.sent.get(s["destination"], 0) > killed)


def _worker(
    port: int,
    log: Path,
    data: Path,
    postgres_url: str,
    sentinels: SentinelGroup,
    gateway: GatewaySim,
    seed: Path,
) -> Any:
    return serve(
        {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
            "MINGPIAN_DATA_DIR": str(data),
            "MINGPIAN_DATABASE_URL": postgres_url,
            "MINGPIAN_DELIVERY_COUNTERS": "redis",
            "MINGPIAN_STORE": "redis",
            "MINGPIAN_MEDIA_STORE": "redis",
            "MINGPIAN_REDIS_URL": sentinels.url,
            "MINGPIAN_REDIS_WAIT_REPLICAS": "1",
            "MINGPIAN_DELIVERY_SEED": str(seed),
            "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
            "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_LOG_FORMAT": "text",
        },
        log,
    )


@pytest.mark.slow
async def test_a_killed_redis_master_fails_over_and_nothing_is_sent_twice_or_overspent(
    tmp_path: Path, postgres_url: str, gateway: GatewaySim, sentinels: SentinelGroup
) -> None:
    seed = seed_doc(
        policy={"chain": ["ussd"], "timeouts": {"ussd": 20}},
        packages=[
            {
                "id": "pool1",
                "kind": "pool",
                "units": UNITS,
                "price": 5.0,
                "policy": "stop",
                "valid_from": time.time() - 60,
                "valid_to": time.time() + 86400,
            }
        ],
    )
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True), "utf-8")
    procs, bases, logs = [], [], []
    for name in ("a", "b"):  # two workers, as two hosts of a fleet
        port = free_port()
        log = tmp_path / f"{name}.log"
        procs.append(
            _worker(port, log, tmp_path / name, postgres_url, sentinels, gateway, tmp_path / "seed.yaml")
        )
        bases.append(f"http://127.0.0.1:{port}")
        logs.append(log)
    base = bases[0]
    try:
        async with aiohttp.ClientSession() as http:
            traffic = Traffic(http, bases)
            loads = asyncio.gather(traffic.calls(), traffic.balances())
            await asyncio.sleep(2.5)
            before = len(gateway.submits)
            assert before > 10, logs[0].read_text()[-2000:]  # cards flow through the first master
            old = await asyncio.to_thread(sentinels.kill_master)
            killed = time.time()
            new = await asyncio.to_thread(sentinels.wait_promoted, old)
            promoted = time.time() - killed
            for _ in range(int(TARGET * 20)):  # the first card out again, then a little more traffic
                if _cards_after(gateway, traffic, killed):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            traffic.stopped = True
            await loads
            finals = [await _settled(http, base, call_id) for call_id in traffic.accepted]
            async with http.get(f"{base}/api/enterprises/sf/usage?by=channel", headers=auth(SF_KEY)) as resp:
                ledger = sum(r["messages"] for r in (await resp.json())["rows"])
            async with http.get(f"{base}/api/enterprises/sf/report", headers=auth(SF_KEY)) as resp:
                used = (await resp.json())["packages"][0]["used"]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)

    after = _cards_after(gateway, traffic, killed)
    first_card = after[0] - killed if after else float("inf")
    during = [a for a in traffic.answers if killed <= a[0] <= killed + first_card]
    refused = [a for a in traffic.answers if a[2] == 503]
    per_callee = Counter(s["destination"] for s in gateway.submits)
    twice = sum(n - 1 for n in per_callee.values() if n > 1)
    states = Counter(d["state"] for d in finals)
    texts = [log.read_text() for log in logs]
    fig = Figures(  # the fault suite's line (simulators/faults.py); blocked: the package ran out
        "Redis master killed, a replica promoted",
        acknowledged=len(traffic.accepted),
        lost=sum(n for state, n in states.items() if state not in ("delivered", "blocked")),
        sent_twice=twice,
        charged_twice=max(0, ledger - len(gateway.submits)),
        first_card=after[0] - killed if after else None,
        notes={
            "promoted after": f"{promoted:.1f} s",
            "requests during it": len(during),
            "refused 503": dict(Counter(a[1] for a in refused)),
            "deliveries": dict(states),
            "package": f"{UNITS} units, charged {ledger} in the ledger, {used} in Redis, "
            f"overspent {max(0, ledger - UNITS)}",
        },
    )
    print(f"\n{fig.line()}")
    assert new != old
    assert first_card <= TARGET
    assert [a for a in traffic.answers if a[2] not in (200, 202, 503)] == []  # never a 500
    assert all(a[3] for a in refused)  # every 503 says when to come back
    assert twice == 0
    assert states["delivered"] == len(gateway.submits) == ledger <= UNITS
    assert used == ledger  # the promoted replica had every charge: none lost, none to spend again
    assert len(traffic.accepted) > UNITS and ledger == UNITS  # the package ran out, exactly
    for text in texts:  # each worker: one line for the outage, one for its end
        assert text.count("Redis is unavailable") == 1, text[-3000:]
        assert text.count("Redis is back") == 1
        assert "Traceback" not in text, text[-3000:]


async def _counted(counters: Any, usage: tuple[int, int], within: float = 3 * MASTER_CHECK) -> None:
    end = time.monotonic() + within
    while True:
        try:
            if await counters.usage("sf/pool1") == usage:
                return
        except RedisError:  # the pool's connections to a server that stopped
            pass
        assert time.monotonic() < end, "the counts were not raised back to the ledger's"
        await asyncio.sleep(0.1)


async def test_charges_redis_lost_are_counted_again_from_the_ledger(
    make_app: AppFactory, backend: dict[str, Any], gateway: GatewaySim, request: pytest.FixtureRequest
) -> None:
    """Without `redis_wait_replicas` a failover can lose the last charges, and a Redis restarted
    without its data loses them all: each worker looks at the master every few seconds and,
    when it is another one or keeps no mark of a past look, raises each package's count back to
    the ledger's in PostgreSQL, so no package is spent past its units all the same."""
    if not backend:
        pytest.skip("the SQLite counters are the ledger itself")
    seed = seed_doc(
        policy={"chain": ["ussd"], "timeouts": {"ussd": 5}},
        packages=[
            {
                "id": "pool1",
                "units": 5,
                "policy": "stop",
                "price": 5.0,
                "valid_from": time.time() - 60,
                "valid_to": time.time() + 86400,
            }
        ],
    )
    client = await make_app(seed)
    counters = client.app[delivery_key].counters
    for i in range(3):
        await call(client, f"r{i}", "ended", callee=_callee(i))
    assert [(await settle(client, f"r{i}:ended"))["state"] for i in range(3)] == ["delivered"] * 3
    assert await counters.usage("sf/pool1") == (3, 0)
    assert await counters.check_master() == 0  # the same master, the mark there: nothing to do
    # A failover to a replica that missed the last two charges: the worker's next look finds
    # another master and counts them again.
    await counters.r.hset(counters.prefix + "pkg:sf/pool1", "used", 1)
    counters._run_id = "the master before the failover"
    await _counted(counters, (3, 0))
    # Redis restarted without its data (every count, and the mark of the last look, gone):
    redis_server = request.getfixturevalue("redis_server")
    await asyncio.to_thread(redis_server.stop)
    await asyncio.to_thread(redis_server.start)
    await _counted(counters, (3, 0))
    for i in range(3, 6):  # two units left of five: two cards, the third call blocked
        await call(client, f"r{i}", "ended", callee=_callee(i))
    states = [(await settle(client, f"r{i}:ended"))["state"] for i in range(3, 6)]
    assert sorted(states) == ["blocked", "delivered", "delivered"]
    assert len(gateway.submitted()) == 5 and await counters.usage("sf/pool1") == (5, 0)
