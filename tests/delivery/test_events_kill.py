"""Facts acknowledged are facts kept: a real `mingpian serve` hears the SMSC's receipts and the
callees' numbered replies (taps), acknowledges every one of them (deliver_sm_resp), and is killed
with SIGKILL at once, well within the event stream's half-second roll. Another worker (on
PostgreSQL) or the same one restarted (SQLite) then rolls the inbox the dead one left, and the
rollups count every acknowledged fact exactly once: sent and delivered per call, tapped once per
callee though some replied twice. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from simulators.smsc import GatewaySim, Rule
from tests.support.processes import free_port, serve
from tests.support.templates import TEMPLATES

from .support import OPERATOR, SF_LINE, auth, seed_doc

N = 30  # calls, each delivered and tapped
REPEATS = 6  # callees who reply "1" twice: their tap counts once


def _settings(tmp_path: Path, name: str, gateway: GatewaySim, backend: dict[str, Any]) -> dict[str, str]:
    seed = tmp_path / "seed.yaml"
    if not seed.exists():
        now = time.time()
        pool = {"id": "pool1", "kind": "pool", "units": 100_000, "price": 5.0, "policy": "stop",
                "valid_from": now - 86400, "valid_to": now + 30 * 86400}  # fmt: skip
        doc = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 20}}, packages=[pool])
        seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    settings = {
        "MINGPIAN_PORT": str(free_port()),
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(tmp_path / name),
        "MINGPIAN_DELIVERY_SEED": str(seed),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_DELIVERY_LEASE": "1.5",
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
    }
    if backend:
        settings |= {
            "MINGPIAN_DATABASE_URL": backend["database_url"],
            "MINGPIAN_DELIVERY_COUNTERS": "redis",
            "MINGPIAN_REDIS_URL": backend["redis_url"],
        }
    return settings


async def _query(backend: dict[str, Any], tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """A read of the store from outside the servers (one of them killed)."""
    if backend:
        conn = await asyncpg.connect(backend["database_url"])
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    con = sqlite3.connect(tmp_path / "a" / "delivery.sqlite3")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def _rollups(backend: dict[str, Any], tmp_path: Path) -> dict[str, int]:
    rows = await _query(
        backend, tmp_path, "SELECT kind, button, sum(n) FROM event_rollups WHERE grain = 'd' GROUP BY 1, 2"
    )
    return {(f"{k}:{b}" if b else k): int(n) for k, b, n in rows}


def _unacked(gateway: GatewaySim) -> int:
    return sum(len(s.unacked) for s in gateway._sessions)


async def _until(what: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.002)


async def test_facts_acknowledged_before_a_sigkill_are_each_counted_once(
    tmp_path: Path, gateway: GatewaySim, backend: dict[str, Any]
) -> None:
    gateway.set_rules([Rule("deliver", delay=0.05)])
    settings = _settings(tmp_path, "a", gateway, backend)
    a = serve(settings, tmp_path / "a.log")
    url = f"http://127.0.0.1:{settings['MINGPIAN_PORT']}"
    callees = [f"137{i:08d}" for i in range(N)]
    procs: list[subprocess.Popen[bytes]] = [a]
    try:
        async with aiohttp.ClientSession() as http:
            for i, callee in enumerate(callees):
                body = {"call_id": f"ek{i}", "caller": SF_LINE, "callee": "+86" + callee, "phase": "ended"}
                async with http.post(f"{url}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                    assert resp.status == 202, await resp.text()
            end = time.monotonic() + 20
            for i in range(N):  # every receipt acknowledged, every delivery delivered
                while True:
                    async with http.get(f"{url}/api/calls/ek{i}", headers=auth(OPERATOR)) as resp:
                        state = (await resp.json())["deliveries"][0]["state"]
                    if state != "active" or time.monotonic() > end:
                        break
                    await asyncio.sleep(0.05)
                assert state == "delivered", (i, state)
        # the taps: numbered replies, some twice; the server is killed the moment all are acked
        for callee in callees + callees[:REPEATS]:
            gateway.send_mo(callee, SF_LINE.removeprefix("+86"), "1")
        await _until(lambda: gateway.mo_sent == N + REPEATS and _unacked(gateway) == 0, 10)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed_at = time.monotonic()
        assert gateway.receipts_sent >= N  # a long card is several segments, each with its receipt
        # Nothing acknowledged is lost: each fact is rolled up already or waits in the inbox.
        left = (await _query(backend, tmp_path, "SELECT count(*) FROM delivery_event_inbox"))[0][0]
        print(f"facts still in the inbox at the kill: {left}")
        # Another worker (PostgreSQL) or the same one restarted (SQLite) rolls what is left.
        name = "b" if backend else "a"
        again = _settings(tmp_path, name, gateway, backend)
        procs.append(serve(again, tmp_path / f"{name}.log"))
        expected_kinds = {"sent": N, "delivered": N, "tapped": N}
        end = time.monotonic() + 20
        while True:
            got = await _rollups(backend, tmp_path)
            if {k: got.get(k, 0) for k in expected_kinds} == expected_kinds or time.monotonic() > end:
                break
            await asyncio.sleep(0.1)
        assert {k: got.get(k, 0) for k in expected_kinds} == expected_kinds, (
            got,
            left,
            time.monotonic() - killed_at,
        )
        buttons = {k: v for k, v in got.items() if k.startswith("tapped:")}
        assert list(buttons.values()) == [N], got  # one button, once per callee
        assert set(got) == {*expected_kinds, *buttons}, got
        await asyncio.sleep(1.0)  # a roll more: nothing counts twice
        assert await _rollups(backend, tmp_path) == got
        assert (await _query(backend, tmp_path, "SELECT count(*) FROM delivery_event_inbox"))[0][0] == 0
        raw = await _query(backend, tmp_path, "SELECT kind, count(*) FROM delivery_events GROUP BY 1")
        assert dict(raw) == {"sent": N, "delivered": N, "tapped": 2 * N}  # tapped: the step and the button
        vendors = await _query(
            backend, tmp_path, "SELECT DISTINCT vendor FROM delivery_events WHERE kind = 'delivered'"
        )
        assert vendors == [("smsc",)]  # who reported the receipts
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
