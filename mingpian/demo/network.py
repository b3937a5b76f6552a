"""The demo's carrier network, started as tasks of the server (a cleanup_ctx, first in the list
so it is up before delivery binds and down after it stops): the SMSC (SMPP), the MaaP (CSP
dialect, signing its webhook calls) and the card-SMS platform with a Huawei phone behind it, each
on its loopback port. The phones' rules make the fall-overs happen: a phone without 5G messages
is skipped on `rcs`, the feature phone takes USSD, the last phone refuses USSD and flash."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

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
    displayed: set[str] = field(default_factory=set)  # 5G messages a phone on the page showed


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


def _network(demo: Demo) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        base = demo.local_url
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
            reports=True,  # "delivered" reports to the chatbot's webhook, as the platform sends them
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
        kept = demo.settings.data_dir / "demo" / "cardsms-templates.json"
        _load_templates(cardsms, kept)
        try:
            yield
        finally:
            _save_templates(cardsms, kept)
            for runner in runners:
                await runner.cleanup()
            await smsc.stop()

    return run


def _load_templates(sim: CardSmsSim, path: Path) -> None:
    """The card-SMS platform remembers its templates across restarts, as the real one does: our
    side registered the card once and keeps using its template id."""
    try:
        kept = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return
    for tpl_id, t in kept.items():
        sim.templates[tpl_id] = Template(tpl_id, t["body"], t["vendors"], t.get("reasons", {}))


def _save_templates(sim: CardSmsSim, path: Path) -> None:
    doc = {
        t.tpl_id: {"body": t.body, "vendors": t.vendors, "reasons": t.reasons} for t in sim.templates.values()
    }
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


async def _register_cards(app: web.Application) -> None:
    """The demo's cards as card-SMS templates, in the background once the server listens (the
    vendors' answers are called back to it); once, the platform keeping it across restarts."""
    from mingpian.api.delivery import delivery_key  # deferred: the delivery feature's key

    service = app.get(delivery_key)
    net = app.get(network_key)
    if service is None or service.cardsms is None or net is None:
        return

    async def register() -> None:
        from delivery import reviews

        await asyncio.sleep(0.5)  # the site binds right after startup: the vendors' callbacks need it
        ent = await service.store.get("enterprise", "", ENTERPRISE)
        for name in ("pre", "hangup"):
            card = await service.store.get("card", ENTERPRISE, name)
            if ent is None or card is None:
                continue
            n = int(card.get("version", 1))
            body = await reviews.version_body(service.store, ENTERPRISE, name, n)
            if body is not None:  # answered with its document when registered before a restart
                got = await service.cardsms.register(ent, name, n, body)
                if got.get("state") == "error":
                    log.warning("演示：卡片短信模板登记失败：%s", got.get("why", ""))

    task = asyncio.get_running_loop().create_task(register())
    app[register_key] = task  # kept: a task nothing holds may be collected mid-flight
