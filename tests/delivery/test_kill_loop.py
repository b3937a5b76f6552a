"""Crash safety under load: a real `mingpian serve` (the embedded default, SQLite) is killed with
SIGKILL ten times while call events keep coming, and restarted each time. Chain `[ussd, sms]`,
receipts half a second after each submit, so kills land in every window: between the attempt
row and the submit, between the SMSC's answer and the recording of the message id, between a
receipt and its acknowledgement. Afterwards every acknowledged event is delivered (0 lost), no
recipient got a card twice (the SMSC counts submits per recipient) and the ledger charges
exactly what the SMSC was sent (0 charged twice)."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.gatewaysim import GatewaySim, Rule
from tests.support.processes import free_port, serve
from tests.support.templates import TEMPLATES

from .support import OPERATOR, SF_KEY, SF_LINE, auth, seed_doc

KILLS = 10
USSD_TIMEOUT = 3.0


def _callee(i: int) -> str:
    return f"+86137{i:08d}"


def _cards(submits: list[dict[str, Any]]) -> int:
    """Cards a person got: a long SMS is several submits (segments) but one card; its first
    segment's UDH ends with sequence number 01."""
    return sum(1 for s in submits if not s["udh"] or s["udh"].endswith("01"))


async def _load(base: dict[str, str], acked: dict[str, str], stop: asyncio.Event) -> None:
    """Call events one after another (a new call id and recipient each) to whichever server is
    up; only a 202 counts as acknowledged."""
    i = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while not stop.is_set():
            call_id = f"kl{i}"
            body = {"call_id": call_id, "caller": SF_LINE, "callee": _callee(i), "phase": "ended"}
            i += 1
            try:
                async with http.post(f"{base['url']}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                    if resp.status == 202:
                        acked[call_id] = _callee(i - 1)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.05)  # the server is down: the caller would retry later
            await asyncio.sleep(0.01)


async def _final(http: aiohttp.ClientSession, url: str, call_id: str, end: float) -> dict[str, Any]:
    while True:
        async with http.get(f"{url}/api/calls/{call_id}", headers=auth(OPERATOR)) as resp:
            d = (await resp.json())["deliveries"][0]
        if d["state"] != "active" or time.monotonic() > end:
            return d  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


async def test_ten_kills_under_load_lose_nothing_and_send_nothing_twice(
    tmp_path: Path, gateway: GatewaySim
) -> None:
    seed = tmp_path / "seed.yaml"
    policy = {"chain": ["ussd", "sms"], "timeouts": {"ussd": USSD_TIMEOUT, "sms": 20}}
    now = time.time()
    pool = {"id": "pool1", "kind": "pool", "units": 100_000, "price": 5.0, "policy": "stop",
            "valid_from": now - 86400, "valid_to": now + 30 * 86400}  # fmt: skip
    doc = seed_doc(policy=policy, packages=[pool])
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    gateway.set_rules([Rule("deliver", delay=0.5)])
    port = free_port()
    settings = {
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(tmp_path / "data"),
        "MINGPIAN_DELIVERY_SEED": str(seed),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
    }

    def start() -> subprocess.Popen[bytes]:
        return serve(settings, tmp_path / "server.log")

    base = {"url": f"http://127.0.0.1:{port}"}
    acked: dict[str, str] = {}
    stop = asyncio.Event()
    rng = random.Random(7)
    proc = start()
    load = asyncio.create_task(_load(base, acked, stop))
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.6, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = await asyncio.to_thread(start)
        await asyncio.sleep(1.0)
        stop.set()
        await load
        assert len(acked) >= 100, f"too little load to mean anything: {len(acked)} events acknowledged"
        async with aiohttp.ClientSession() as http:
            end = time.monotonic() + 40  # the last USSD timeouts and SMS receipts
            finals = {cid: await _final(http, base["url"], cid, end) for cid in acked}
            lost = {cid: (d["state"], d["reason"]) for cid, d in finals.items() if d["state"] != "delivered"}
            assert not lost, f"acknowledged but not delivered: {lost}"
            doubles = {
                callee: [(s["channel"], s["udh"]) for s in gateway.submitted(callee[3:])]
                for callee in acked.values()
                if _cards(gateway.submitted(callee[3:])) > 1
            }
            assert not doubles, f"sent twice: {doubles}"
            async with http.get(
                f"{base['url']}/api/enterprises/sf/usage?by=channel", headers=auth(SF_KEY)
            ) as r:
                charged = sum(row["messages"] for row in (await r.json())["rows"])
        # every card the SMSC was sent (acknowledged or not: an event stored just before a kill is
        # delivered all the same) is charged once; failed ones were refunded
        assert charged == len(gateway.submits), (charged, len(gateway.submits))
    finally:
        stop.set()
        if not load.done():
            load.cancel()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
