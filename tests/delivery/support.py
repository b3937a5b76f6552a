"""Helpers for the delivery tests: the sample enterprises' keys, numbers and seed document
(simulators/seeds.py), and functions to post call events and wait for outcomes. Fixtures (the
gateway simulator, a seeded app bound to it over SMPP, the MaaP simulator for 5G messages) are
in tests/delivery/conftest.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from delivery.gateways.smpp_address import Numbering
from delivery.gateways.smpp_pdu import ShortMessage
from infra.outage import Unavailable
from mingpian.api.delivery import delivery_key
from mingpian.settings import Settings
from simulators.seeds import (  # re-exported (__all__): the delivery tests import them from here
    CHATBOT,
    CMB_KEY,
    CMB_LINE,
    CUSTOMER,
    DAY,
    OPERATOR,
    SF_HOTLINE,
    SF_KEY,
    SF_LINE,
    sample,
    seed_doc,
)
from simulators.smsc import GatewaySim, Rule
from tests.support.browser import ServerThread
from tests.support.processes import free_port

Client = TestClient[Any, web.Application]
RCS_PHONE = "+8613912340000"  # the one 5G-message terminal the MaaP simulator knows


def rcs_seed() -> dict[str, Any]:
    """The seed with sf sending over RCS first (its chatbot), then USSD and flash."""
    seed = seed_doc(policy={"chain": ["rcs", "ussd", "flash"], "timeouts": {"ussd": 0.6, "flash": 0.8}})
    seed["enterprises"][0]["chatbot"] = CHATBOT
    return seed


def maap_settings(sim: Any, server: Any) -> dict[str, Any]:
    """The settings that point an app at the MaaP simulator `sim` served by `server`."""
    return {
        "maap_url": str(server.make_url("")).rstrip("/"),
        "maap_app_id": sim.app_id,
        "maap_app_key": sim.app_key,
    }


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


AppFactory = Callable[..., Any]  # the make_app fixture (tests/delivery/conftest.py)


async def call(
    client: Client,
    call_id: str,
    phase: str,
    caller: str = SF_LINE,
    callee: str = CUSTOMER,
    key: str = OPERATOR,
) -> Any:
    resp = await client.post(
        "/api/calls",
        json={"call_id": call_id, "caller": caller, "callee": callee, "phase": phase},
        headers=auth(key),
    )
    assert resp.status in (200, 202), await resp.text()
    return await resp.json()


async def settle(client: Client, delivery: str, timeout: float = 8.0) -> dict[str, Any]:
    """Wait until a delivery reaches a final state; its row with attempts. Just after an outage
    a read may still answer Unavailable (a flush begun while the database was away fails the
    reads waiting on it, as a request would get a 503): read again, as a client would."""
    store = client.app[delivery_key].store
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            d = await store.delivery(delivery)
            if d is not None and d.state != "active":
                return {**d.to_json(), "attempts": [a.to_json() for a in await store.attempts(delivery)]}
        except Unavailable:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError(f"delivery {delivery} still active: {await store.delivery(delivery)}")


async def idle(client: Client) -> None:
    await client.app[delivery_key].chains.idle()


__all__ = [
    "CHATBOT", "CMB_KEY", "CMB_LINE", "CUSTOMER", "DAY", "OPERATOR", "SF_HOTLINE", "SF_KEY", "SF_LINE",
    "GatewaySim", "Rule", "call", "idle", "sample", "seed_doc", "settle",
]  # fmt: skip


def numbered_sm(text: bytes, to: str = "+8613912345678", sender: str = "95555") -> ShortMessage:
    """A submit_sm addressed as the SMPP channels address theirs (national plan: TON 2 / NPI 1
    subscriber, TON 3 / NPI 0 service code)."""
    src, dst = Numbering().address(sender), Numbering().address(to)
    return ShortMessage(
        src.digits,
        dst.digits,
        text,
        registered_delivery=1,
        source_ton=src.ton,
        source_npi=src.npi,
        dest_ton=dst.ton,
        dest_npi=dst.npi,
    )


def seeded_server(
    base: Path, rules: list[Rule] | None = None, doc: dict[str, Any] | None = None
) -> tuple[ServerThread, list[GatewaySim]]:
    """A real server in a thread on the sample seed (or `doc`; `base` holds its files), with a
    gateway simulator started in its own event loop (with `rules`): for the browser tests. Its
    app is the thread's `app` (run coroutines on it with `asyncio.run_coroutine_threadsafe(…,
    _loop)`)."""
    seed = base / "seed.yaml"
    seed.write_text(yaml.safe_dump(doc or seed_doc(), allow_unicode=True), "utf-8")
    smpp_port = free_port()
    settings = Settings(
        data_dir=base / "var",
        log_format="text",
        log_level="WARNING",
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{smpp_port}",
        delivery_smpp_password="secret",
    )
    sims: list[GatewaySim] = []

    def prepare(app: web.Application) -> None:
        server.app = app  # type: ignore[attr-defined]

        async def gateway(app: web.Application) -> AsyncIterator[None]:
            sim = GatewaySim(password="secret")
            sim.set_rules(rules or [])
            await sim.start(port=smpp_port)
            sims.append(sim)
            yield
            await sim.stop()

        app.cleanup_ctx.insert(0, gateway)

    server = ServerThread(settings, prepare)
    return server.start(), sims


async def approve_latest(client: Client, eid: str, card: str) -> None:
    """The operator approves a card's waiting version: what an edit by its enterprise needs
    before calls get it (delivery/reviews.py)."""
    shown = await (await client.get(f"/api/enterprises/{eid}/cards/{card}", headers=auth(OPERATOR))).json()
    r = await client.post(
        f"/api/enterprises/{eid}/cards/{card}/versions/{shown['version']}/decision",
        json={"approve": True},
        headers=auth(OPERATOR),
    )
    assert r.status == 200, await r.text()
