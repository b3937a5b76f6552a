"""The demo's carrier network, started as tasks of the server (a cleanup_ctx, first in the list
so it is up before delivery binds and down after it stops): the SMSC (SMPP), the MaaP (CSP
dialect, signing its webhook calls) and the card-SMS platform with a Huawei phone behind it, each
on its loopback port. The phones' rules make the fall-overs happen: a phone without 5G messages
is skipped on `rcs`, the feature phone takes USSD, the last phone refuses USSD and flash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from delivery.gateways.cardsms_template import VENDORS
from simulators.cardsms import CardSmsSim, Template
from simulators.maap import Simulator
from simulators.smsc import GatewaySim, Rule

from ..keys import demo_page_key
from .phones import CHATBOT, ENTERPRISE, PAGE, PHONES
from .plan import Demo

log = logging.getLogger("mingpian.demo")


@dataclass
class Network:
    """The three simulators of a running demo (what the 模拟来电 page reads back)."""

    smsc: GatewaySim
    maap: Simulator
    cardsms: CardSmsSim


network_key = web.AppKey("demo_network", Network)
demo_key = web.AppKey("demo", Demo)
register_key = web.AppKey("demo_register", asyncio.Task)


def _rules() -> list[Rule]:
    fallback = next(p for p in PHONES if p.kind == "fallback").number[3:]
    return [
        Rule(action="fail", channel="ussd", destination=fallback, stat="UNDELIV"),
        Rule(action="fail", channel="flash", destination=fallback, stat="UNDELIV"),
    ]


def attach(app: web.Application, demo: Demo) -> None:
    """Run the demo's network with `app` (built from `demo.settings`)."""
    app[demo_key] = demo
    app[demo_page_key] = PAGE
    app.cleanup_ctx.insert(0, _network(demo))
    app.on_startup.append(_register_cards)


def _network(demo: Demo):  # type: ignore[no-untyped-def]
    async def run(app: web.Application) -> AsyncIterator[None]:
        base = demo.settings.base_url
        smsc = GatewaySim(password=demo.smpp_password)
        smsc.set_rules(_rules())
        await smsc.start(port=demo.smpp_port)
        rcs = next(p for p in PHONES if p.kind == "rcs").number
        maap = Simulator(
            webhook=f"{base}/maap/courier",
            chatbot=CHATBOT,
            app_id=demo.maap_app_id,
            app_key=demo.maap_app_key,
            csp_token=demo.csp_token,
            capable={"tel:" + rcs},
        )
        cardsms = CardSmsSim(
            key=demo.cardsms_key, secret=demo.cardsms_secret, callback_secret=demo.callback_secret
        )
        cardsms.callback = f"{base}/api/cardsms/koomessage"
        for p in PHONES:
            if p.kind == "cardsms":
                cardsms.set_phone(p.number, "HuaWei")
        smsc.on_delivered.append(cardsms.delivered)
        runners = []
        for sim_app, port in ((maap.app(), demo.maap_port), (cardsms.app(), demo.cardsms_port)):
            runner = web.AppRunner(sim_app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        app[network_key] = Network(smsc, maap, cardsms)
        try:
            yield
        finally:
            for runner in runners:
                await runner.cleanup()
            await smsc.stop()

    return run


async def _register_cards(app: web.Application) -> None:
    """The hang-up card as a card-SMS template, in the background once the server listens (the
    vendors' answers are called back to it). A template registered before a restart is told to
    the new platform, approved, as the real one would remember it."""
    from mingpian.api.delivery import delivery_key  # deferred: the delivery feature's key

    service = app.get(delivery_key)
    net = app.get(network_key)
    if service is None or service.cardsms is None or net is None:
        return

    async def register() -> None:
        ent = await service.store.get("enterprise", "", ENTERPRISE)
        card = await service.store.get("card", ENTERPRISE, "hangup")
        if ent is None or card is None:
            return
        n = int(card.get("version", 1))
        doc = await service.cardsms.template_of(ENTERPRISE, "hangup", n)
        if doc is not None and doc.get("tpl_id") and doc.get("state") != "error":
            net.cardsms.templates[doc["tpl_id"]] = Template(
                doc["tpl_id"], {}, dict.fromkeys(VENDORS, "approved")
            )
            return
        await asyncio.sleep(0.5)  # the site binds right after startup: the vendors' callbacks need it
        from delivery import reviews

        body = await reviews.version_body(service.store, ENTERPRISE, "hangup", n)
        if body is not None:
            got = await service.cardsms.register(ent, "hangup", n, body)
            if got.get("state") == "error":
                log.warning("演示：卡片短信模板登记失败：%s", got.get("why", ""))

    task = asyncio.get_running_loop().create_task(register())
    app[register_key] = task  # kept: a task nothing holds may be collected mid-flight
