"""5G messages through the chatbot's MaaP client against the chatbot's MaaP simulator: the
capability lookup (cached), the card with its SMS fallback, and falling over to USSD."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from mingpian.api.delivery import delivery_key
from simulators.maap import Fault, Simulator

from .support import (
    CHATBOT,
    CUSTOMER,
    RCS_PHONE,
    AppFactory,
    call,
    maap_settings,
    rcs_seed,
    settle,
)
from .support import GatewaySim as _GS


async def _app(make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]) -> Any:
    sim, server, _ = maap
    return await make_app(
        rcs_seed(),
        **maap_settings(sim, server),
    )


async def test_a_5g_phone_gets_the_rich_card_with_the_sms_fallback_filled_in(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, asked = maap
    client = await _app(make_app, maap)
    await call(client, "r1", "ended", callee=RCS_PHONE)
    d = await settle(client, "r1:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs"
    [got] = sim.received
    body = got.body
    assert body["destinationAddress"] == ["tel:" + RCS_PHONE] and body["senderAddress"] == CHATBOT
    assert body["smsSupported"] is True and body["smsContent"].startswith("【顺丰速运】")
    assert body["messageList"][0]["contentType"] == "application/vnd.gsma.botmessage.v1.0+json"
    assert gateway.submitted() == []  # the MaaP owns the fallback: no second card by USSD
    # a second call to the same phone uses the cached capability
    await call(client, "r2", "ended", callee=RCS_PHONE)
    await settle(client, "r2:ended")
    assert asked == ["tel:" + RCS_PHONE]


async def test_a_phone_without_5g_messages_skips_rcs_and_gets_ussd(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, asked = maap
    client = await _app(make_app, maap)
    await call(client, "n1", "ringing")
    d = await settle(client, "n1:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("rcs", "skipped"), ("ussd", "delivered")]
    assert d["attempts"][0]["detail"] == "the phone cannot show 5G messages"
    assert sim.received == [] and len(gateway.submitted(CUSTOMER[3:])) == 1
    assert client.app[delivery_key].chains.capability.lookups == 1  # type: ignore[union-attr]
    _ = asked


async def test_maap_outage_falls_over_to_ussd(
    make_app: AppFactory, gateway: _GS, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    sim.fault = Fault(mode="error", status=503)
    await call(client, "o1", "ended", callee=RCS_PHONE)
    d = await settle(client, "o1:ended")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("rcs", "error"), ("ussd", "delivered")]
    assert "MaaP" in d["attempts"][0]["detail"]
