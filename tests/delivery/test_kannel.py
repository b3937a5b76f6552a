"""Flash SMS and SMS over Kannel's HTTP sendsms, with dlr-url receipts and MO replies, against
the gateway simulator's Kannel side (real HTTP both ways)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp.test_utils import TestServer

from mingpian.api.delivery import delivery_key

from .support import (
    CUSTOMER,
    AppFactory,
    Rule,
    call,
    seed_doc,
    settle,
)
from .support import GatewaySim as _GS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _kannel_app(make_app: AppFactory, gateway: _GS, aiohttp_server: Any) -> tuple[Any, TestServer]:
    kannel: TestServer = await aiohttp_server(gateway.control_app())
    seed = seed_doc(policy={"chain": ["flash", "sms"], "timeouts": {"flash": 1.0, "sms": 1.0}})
    client = await make_app(
        seed,
        port=_free_port(),
        delivery_kannel_url=str(kannel.make_url("")).rstrip("/"),
        delivery_kannel_username="mingpian",
        delivery_kannel_password="secret",
    )
    return client, kannel


async def test_flash_fails_then_sms_is_delivered_through_kannel(
    make_app: AppFactory, gateway: _GS, aiohttp_server: Any
) -> None:
    gateway.set_rules([Rule("fail", channel="flash")])
    client, _ = await _kannel_app(make_app, gateway, aiohttp_server)
    await call(client, "k1", "ringing")
    d = await settle(client, "k1:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("flash", "failed"), ("sms", "delivered")]
    flash, sms = gateway.submitted(CUSTOMER[3:])
    assert flash["via"] == sms["via"] == "kannel"
    assert flash["data_coding"] == 0x18 and sms["data_coding"] == 0x08  # UCS-2; mclass=0 for the flash
    assert sms["text"].startswith("【顺丰速运】")
    [b] = await client.app[delivery_key].meter.balances("sf")
    assert b["used"] == d["attempts"][1]["units"]  # the failed flash was refunded


async def test_kannel_callbacks_need_the_token_and_mo_opt_out_works(
    make_app: AppFactory, gateway: _GS, aiohttp_server: Any
) -> None:
    client, _ = await _kannel_app(make_app, gateway, aiohttp_server)
    token = client.app[delivery_key].kannel_token
    resp = await client.get("/api/gateway/kannel/dlr", params={"id": "x", "type": "1", "token": "wrong"})
    assert resp.status == 401 and (await resp.json())["problems"][0]["path"] == "token"
    resp = await client.get("/api/gateway/kannel/dlr", params={"id": "x", "type": "one", "token": token})
    assert resp.status == 400
    resp = await client.get(
        "/api/gateway/kannel/mo",
        params={"from": "13912345678", "to": "13800000001", "text": "退订", "token": token},
    )
    assert resp.status == 200 and (await resp.json())["opt_out"] is True
    assert await client.app[delivery_key].store.opted_out("sf", CUSTOMER)
    await asyncio.sleep(0)
