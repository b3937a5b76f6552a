"""5G replies reach the delivery side in-process: a card delivered over RCS, then the user's tap
or "退订" arriving at the chatbot's own webhook (signed, as the MaaP sends it) — the tap shows in
the enterprise's report, the opt-out blocks every channel."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from mingpian.settings import PROJECT_ROOT
from renderer.templates import TemplateStore
from simulators.maap import Simulator
from tests.support.templates import TEMPLATES

from .support import (
    CHATBOT,
    OPERATOR,
    RCS_PHONE,
    SF_KEY,
    AppFactory,
    auth,
    call,
    maap_settings,
    rcs_seed,
    sample,
    settle,
)
from .support import GatewaySim as _GS

TOKEN = "csp-token-退订测试"
USER = "tel:" + RCS_PHONE


async def _app(make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]) -> Any:
    sim, server, _ = maap
    client = await make_app(
        rcs_seed(),
        **maap_settings(sim, server),
        chatbot_dir=PROJECT_ROOT / "chatbots",
        webhook_csp_token=TOKEN,
    )
    sim.csp_token = TOKEN  # the simulator signs its webhook calls as a CT/CU CSP does
    sim.chatbot = CHATBOT
    sim.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    return client


async def _report(client: Any) -> dict[str, Any]:
    return await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()  # type: ignore[no-any-return]


async def test_a_tap_on_a_5g_button_at_the_chatbot_counts_in_the_report(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    await call(client, "t1", "ended", callee=RCS_PHONE)
    assert (await settle(client, "t1:ended"))["channel"] == "rcs"
    [card] = sim.received
    buttons = card.postbacks
    assert len(buttons) >= 2
    tap = sim.message(USER, postback=buttons[1])
    assert await sim.deliver(tap) == 200
    assert await sim.deliver(tap) == 200  # the platform redelivers the same tap: counted once
    assert await sim.say(USER, "你好") == 200  # chatter is no tap
    taps = (await _report(client))["taps"]
    assert [(t["card"], t["taps"]) for t in taps] == [("hangup", 1)]
    labels = [
        b.text
        for b in TemplateStore(TEMPLATES)
        .get("courier-hangup")
        .render(sample("courier-hangup"))
        .all_suggestions
    ]
    assert taps[0]["button"] == labels[1]
    # another user's tap (no card from this enterprise) counts for nothing
    assert await sim.tap("tel:+8613700000000", buttons[0]) == 200
    assert [t["taps"] for t in (await _report(client))["taps"]] == [1]


async def test_opt_out_through_the_chatbot_blocks_every_channel(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    assert await sim.say(USER, "退订") == 200
    optouts = (await (await client.get("/api/enterprises/sf/optouts", headers=auth(SF_KEY))).json())[
        "optouts"
    ]
    assert [(o["number"], o["channel"], o["text"]) for o in optouts] == [(RCS_PHONE, "rcs", "退订")]
    await call(client, "o1", "ringing", callee=RCS_PHONE)  # USSD/flash would reach this phone too
    d = await settle(client, "o1:ringing")
    assert (d["state"], d["reason"], d["attempts"]) == ("blocked", "opted out", [])
    assert gateway.submitted() == []
    # the other enterprise (another chatbot) may still reach the number
    cmb = await (await client.get("/api/enterprises/cmb/optouts", headers=auth(OPERATOR))).json()
    assert cmb["optouts"] == []


async def test_chatbot_replies_and_delivery_cards_share_one_maap_token(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    """One MaaP account, one client: the hang-up card (capability lookup and send, delivery) and
    the bot's replies to taps on it (outbox) all use one access token. CT/CU cancel a token when
    a new one is issued, so a second client would knock the first one's token out."""
    import asyncio

    sim, _, asked = maap
    client = await _app(make_app, maap)
    await call(client, "k1", "ended", callee=RCS_PHONE)
    assert (await settle(client, "k1:ended"))["channel"] == "rcs"
    assert asked == [USER]  # the capability lookup went out with the token too
    [card] = sim.received
    assert await sim.tap(USER, card.postbacks[0]) == 200  # the bot answers through the outbox
    await call(client, "k2", "ended", callee=RCS_PHONE)
    assert (await settle(client, "k2:ended"))["channel"] == "rcs"
    for _ in range(200):  # the outbox hands the replies over in the background
        if len(sim.received) >= 3:
            break
        await asyncio.sleep(0.02)
    senders = {r.message_id: r for r in sim.received}
    assert len(senders) >= 3  # two cards and at least one reply
    assert sim.token_requests == 1 and sim.rejected == 0
