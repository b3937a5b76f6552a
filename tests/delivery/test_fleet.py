"""A fleet: two real `mingpian serve` processes sharing one PostgreSQL database, one Redis and one
SMSC. Whatever one worker stores the other serves; calls spread over both are each delivered once;
a worker killed with SIGKILL mid-delivery has its chains taken over by the other when their
leases run out, and nothing is sent or charged twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from mingpian.settings import PROJECT_ROOT
from simulators.smsc import GatewaySim, Rule
from tests.support.processes import free_port, serve, wait_port
from tests.support.templates import TEMPLATES

from .support import CUSTOMER, OPERATOR, SF_KEY, SF_LINE, auth, seed_doc

LEASE = 1.5  # seconds: a dead worker's chains are taken over this soon
Worker = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
async def fleet(
    tmp_path: Path, postgres_url: str, redis_url: str, gateway: GatewaySim
) -> AsyncIterator[tuple[Worker, dict[str, str]]]:
    """Start workers by name (`start("a")`); their base URLs by name. All stopped at the end."""
    seed = tmp_path / "seed.yaml"
    policy = {"chain": ["ussd"], "timeouts": {"ussd": 20}}
    seed.write_text(yaml.safe_dump(seed_doc(policy=policy), allow_unicode=True), "utf-8")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    ports: dict[str, int] = {}

    def start(name: str) -> subprocess.Popen[bytes]:
        port = ports.setdefault(name, free_port())
        settings = {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
            "MINGPIAN_DATA_DIR": str(tmp_path / name),
            "MINGPIAN_DATABASE_URL": postgres_url,
            "MINGPIAN_DELIVERY_COUNTERS": "redis",
            "MINGPIAN_REDIS_URL": redis_url,
            "MINGPIAN_DELIVERY_SEED": str(seed),
            "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
            "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
            "MINGPIAN_DELIVERY_LEASE": str(LEASE),
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_LOG_FORMAT": "text",
        }
        proc = serve(settings, tmp_path / f"{name}.log")
        procs[name], urls[name] = proc, f"http://127.0.0.1:{port}"
        return proc

    try:
        yield start, urls
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _call(http: aiohttp.ClientSession, base: str, call_id: str, callee: str) -> int:
    body = {"call_id": call_id, "caller": SF_LINE, "callee": callee, "phase": "ended"}
    async with http.post(f"{base}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
        assert resp.status in (200, 202), await resp.text()
        return resp.status


async def _final(http: aiohttp.ClientSession, base: str, call_id: str, timeout: float = 30) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        async with http.get(f"{base}/api/calls/{call_id}", headers=auth(OPERATOR)) as resp:
            d = (await resp.json())["deliveries"][0]
        if d["state"] != "active" or time.monotonic() > end:
            return d  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


async def _first_attempt(http: aiohttp.ClientSession, base: str, call_id: str) -> str:
    async with http.get(f"{base}/api/calls/{call_id}", headers=auth(OPERATOR)) as resp:
        attempts = (await resp.json())["deliveries"][0]["attempts"]
    return attempts[0]["state"] if attempts else "none"


def _callee(i: int) -> str:
    return f"+86139{i:08d}"


async def test_what_one_worker_stores_the_other_serves(fleet: tuple[Worker, dict[str, str]]) -> None:
    start, urls = fleet
    start("a")
    start("b")
    ent = {"id": "jd", "name": "京东物流", "signature": "京东物流"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{urls['a']}/api/enterprises", json=ent, headers=auth(OPERATOR)) as resp:
            assert resp.status == 201
        async with http.get(f"{urls['b']}/api/enterprises/jd", headers=auth(OPERATOR)) as resp:
            assert resp.status == 200 and (await resp.json())["name"] == "京东物流"
        # a change made through b reaches a's read cache (it had just read the old document)
        async with http.get(f"{urls['a']}/api/enterprises/jd", headers=auth(OPERATOR)) as resp:
            assert (await resp.json())["signature"] == "京东物流"
        ent["signature"] = "京东"
        async with http.put(f"{urls['b']}/api/enterprises/jd", json=ent, headers=auth(OPERATOR)) as resp:
            assert resp.status == 200
        for _ in range(50):
            async with http.get(f"{urls['a']}/api/enterprises/jd", headers=auth(OPERATOR)) as resp:
                if (await resp.json())["signature"] == "京东":
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("worker a still serves the old document")
        # a key issued through a works on b
        async with http.post(f"{urls['a']}/api/enterprises/jd/keys", headers=auth(OPERATOR)) as resp:
            key = (await resp.json())["key"]
        async with http.get(f"{urls['b']}/api/enterprises/jd", headers=auth(key)) as resp:
            assert resp.status == 200


async def test_calls_spread_over_two_workers_are_each_delivered_once(
    fleet: tuple[Worker, dict[str, str]], gateway: GatewaySim
) -> None:
    start, urls = fleet
    start("a")
    start("b")
    n = 40
    async with aiohttp.ClientSession() as http:
        # every event twice, once to each worker: one delivery each all the same
        statuses = await asyncio.gather(
            *(_call(http, urls["ab"[i % 2]], f"s{i}", _callee(i)) for i in range(n)),
            *(_call(http, urls["ba"[i % 2]], f"s{i}", _callee(i)) for i in range(n)),
        )
        assert statuses.count(202) == n and statuses.count(200) == n
        finals = [await _final(http, urls["ab"[i % 2]], f"s{i}") for i in range(n)]
        assert [d["state"] for d in finals] == ["delivered"] * n
        assert all(len(gateway.submitted(_callee(i)[3:])) == 1 for i in range(n))
        async with http.get(f"{urls['b']}/api/enterprises/sf/usage?by=channel", headers=auth(SF_KEY)) as resp:
            rows = (await resp.json())["rows"]
        assert rows[0]["messages"] == n  # reports from the shared ledger, never summed by hand


async def test_a_killed_worker_s_chains_are_taken_over_without_double_sends(
    fleet: tuple[Worker, dict[str, str]], gateway: GatewaySim
) -> None:
    start, urls = fleet
    a = start("a")
    start("b")
    gateway.set_rules([Rule("deliver", delay=3.0)])  # receipts come late: chains wait in a when it dies
    n = 20
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(_call(http, urls["a"], f"k{i}", _callee(100 + i)) for i in range(n)))
        # a handed every card to the SMSC and recorded its message id; now the chains wait in a for
        # their receipts. (A kill between a submit and the recording of its id is the one window
        # in which a card may be counted as not delivered; it is never sent twice.)
        for _ in range(300):
            states = [await _first_attempt(http, urls["b"], f"k{i}") for i in range(n)]
            if states.count("submitted") == n:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not all submitted: {states}")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        # b takes a's chains over when their leases run out; the late receipts reach b's session
        finals = [await _final(http, urls["b"], f"k{i}", timeout=40) for i in range(n)]
        assert [d["state"] for d in finals] == ["delivered"] * n, [
            (d["id"], d["state"], d["reason"], d["attempts"]) for d in finals if d["state"] != "delivered"
        ]
        assert all(len(gateway.submitted(_callee(100 + i)[3:])) == 1 for i in range(n))
        start("a")  # a comes back: it finds nothing left to do twice
        await _call(http, urls["a"], "k-after", CUSTOMER)
        assert (await _final(http, urls["a"], "k-after"))["state"] == "delivered"
        assert len(gateway.submitted()) == n + 1
        async with http.get(f"{urls['a']}/api/enterprises/sf/usage?by=channel", headers=auth(SF_KEY)) as resp:
            assert (await resp.json())["rows"][0]["messages"] == n + 1  # charged once each


async def test_serve_workers_runs_a_supervised_fleet_on_one_port(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """`mingpian serve --workers 2` as an operator starts it: both workers serve one port and the
    shared backends; a worker killed is replaced; SIGTERM stops them all gracefully."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
            "MINGPIAN_DATA_DIR": str(tmp_path / "var"),
            "MINGPIAN_DATABASE_URL": postgres_url,
            "MINGPIAN_STORE": "redis",
            "MINGPIAN_DELIVERY_COUNTERS": "redis",
            "MINGPIAN_MEDIA_STORE": "redis",
            "MINGPIAN_REDIS_URL": redis_url,
            "MINGPIAN_DELIVERY_OPERATOR_KEY": OPERATOR,
            "MINGPIAN_SHUTDOWN_TIMEOUT": "2.5",
            "MINGPIAN_LOG_LEVEL": "WARNING",
        }
    )
    log = tmp_path / "fleet.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve", "--workers", "2"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, proc, timeout=60)

        def workers() -> set[int]:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            return {int(k) for k in kids}

        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # both workers up and ready
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200 and len(workers()) == 2:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(log.read_text()[-2000:])
            ent = {"id": "yt", "name": "圆通速递", "signature": "圆通速递"}
            async with http.post(f"{base}/api/enterprises", json=ent, headers=auth(OPERATOR)) as resp:
                assert resp.status == 201
            for _ in range(20):  # whichever worker answers has it
                async with http.get(f"{base}/api/enterprises/yt", headers=auth(OPERATOR)) as resp:
                    assert resp.status == 200
            first = workers()
            os.kill(next(iter(first)), signal.SIGKILL)
            for _ in range(150):  # gunicorn replaces it
                now = workers()
                if len(now) == 2 and now != first:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"workers {first} -> {workers()}")
            for _ in range(100):
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
