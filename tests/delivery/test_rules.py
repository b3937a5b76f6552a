"""Opt-out on any channel, frequency caps, quiet hours for advertising cards, ad rotation."""

from __future__ import annotations

import asyncio
import time

import pytest

from delivery import rules
from mingpian.api.delivery import delivery_key
from simulators.smsc import GatewaySim

from .support import (
    CUSTOMER,
    SF_KEY,
    AppFactory,
    auth,
    call,
    sample,
    seed_doc,
    settle,
)


@pytest.mark.parametrize("text", ["TD", "td", "ＴＤ", "退订", " 退订。", "T", "t!", "【退订】"])
def test_opt_out_words(text: str) -> None:
    assert rules.is_opt_out(text)


@pytest.mark.parametrize("text", ["1", "TDX", "不退订", "回复1", "谢谢"])
def test_not_opt_out(text: str) -> None:
    assert not rules.is_opt_out(text)


def test_quiet_hours_wrap_midnight() -> None:
    policy = {"quiet_hours": {"start": "21:00", "end": "08:00"}}  # UTC+8
    at = lambda h, m=0: (h - 8) % 24 * 3600 + m * 60 + 86400 * 100  # noqa: E731
    assert rules.in_quiet_hours(policy, at(22))
    assert rules.in_quiet_hours(policy, at(7, 59))
    assert not rules.in_quiet_hours(policy, at(8))
    assert not rules.in_quiet_hours(policy, at(12))


async def test_opt_out_by_sms_reply_blocks_every_channel_at_once(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    await call(client, "a1", "ringing")
    assert (await settle(client, "a1:ringing"))["state"] == "delivered"
    gateway.send_mo(CUSTOMER[3:], "13800000001", "退订")  # mobile-originated over SMPP
    store = client.app[delivery_key].store
    for _ in range(100):
        if await store.opted_out("sf", CUSTOMER):
            break
        await asyncio.sleep(0.01)
    optouts = await (await client.get("/api/enterprises/sf/optouts", headers=auth(SF_KEY))).json()
    assert optouts["optouts"][0]["number"] == CUSTOMER and optouts["optouts"][0]["text"] == "退订"
    sent = len(gateway.submitted())
    for phase in ("ringing", "ended"):
        await call(client, "a2", phase)
        d = await settle(client, f"a2:{phase}")
        assert d["state"] == "blocked" and d["reason"] == "opted out"
    # through the hotline too: it is the enterprise that is blocked, not one line
    await call(client, "a3", "ended", caller="4008111111")
    assert (await settle(client, "a3:ended"))["reason"] == "opted out"
    assert len(gateway.submitted()) == sent
    # another enterprise may still reach the number
    await call(client, "a4", "ringing", caller="95555")
    assert (await settle(client, "a4:ringing"))["state"] == "delivered"


async def test_opt_out_on_another_channel_stops_a_chain_in_flight(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    from simulators.smsc import Rule

    gateway.set_rules([Rule("drop", channel="ussd")])
    client = await make_app(
        seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 5, "flash": 5}})
    )
    await call(client, "b1", "ended")
    for _ in range(300):  # until the USSD is out (no receipt will come)
        if len(gateway.submitted()) == 1:
            break
        await asyncio.sleep(0.01)
    resp = await client.post(
        "/api/replies",
        json={"from": CUSTOMER, "to": "13800000001", "text": "TD", "channel": "rcs"},
        headers=auth(SF_KEY),
    )
    assert resp.status == 200 and (await resp.json())["opt_out"] is True
    d = await settle(client, "b1:ended")
    assert d["state"] == "blocked" and d["reason"] == "opted out"
    assert [s["channel"] for s in gateway.submitted()] == ["ussd"]  # the flash fallback never went out


async def test_frequency_cap_one_hangup_card_per_day(make_app: AppFactory, gateway: GatewaySim) -> None:
    seed = seed_doc(
        policy={"chain": ["ussd"], "timeouts": {"ussd": 1}, "caps": {"ended": {"max": 1, "window": 86400}}}
    )
    client = await make_app(seed)
    for i in range(3):
        await call(client, f"f{i}", "ended")
    states = [(await settle(client, f"f{i}:ended"))["state"] for i in range(3)]
    assert states == ["delivered", "blocked", "blocked"]
    d = await settle(client, "f1:ended")
    assert d["reason"] == "frequency cap: 1 per 86400s"
    await call(client, "f9", "ringing")  # the cap is per phase: the pre-call card still goes
    assert (await settle(client, "f9:ringing"))["state"] == "delivered"
    await call(client, "f8", "ended", callee="+8613700000000")  # and per person
    assert (await settle(client, "f8:ended"))["state"] == "delivered"


def _ad_seed(quiet: dict[str, str] | None) -> dict[str, object]:
    seed = seed_doc(
        policy={"chain": ["sms"], "timeouts": {"sms": 1}, **({"quiet_hours": quiet} if quiet else {})}
    )
    ent = seed["enterprises"][0]  # type: ignore[index]
    ent["packages"][0]["units"] = 100_000
    ent["lines"].append({"number": "13800000009", "ad": True, "group": "ads"})
    ad = sample("ad-carousel")
    ent["cards"] += [
        {
            "id": "ad-a",
            "phase": "ended",
            "template": "ad-carousel",
            "group": "ads",
            "kind": "ad",
            "weight": 3,
            "data": ad,
        },
        {
            "id": "ad-b",
            "phase": "ended",
            "template": "ad-carousel",
            "group": "ads",
            "kind": "ad",
            "weight": 1,
            "data": {**ad, "campaign": "年货节"},
        },
    ]
    return seed


async def test_quiet_hours_hold_back_advertising_but_not_identity_cards(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    now = time.gmtime(time.time() + 8 * 3600)
    start = f"{now.tm_hour:02d}:00"
    end = f"{(now.tm_hour + 1) % 24:02d}:00"
    client = await make_app(_ad_seed({"start": start, "end": end}))
    await call(client, "q1", "ended", caller="13800000009")
    d = await settle(client, "q1:ended")
    assert d["state"] == "blocked" and d["reason"] == "quiet hours for advertising cards"
    await call(client, "q2", "ended")  # an identity (hang-up) card at the same time goes out
    assert (await settle(client, "q2:ended"))["state"] == "delivered"


async def test_ad_line_rotates_cards_by_weight_and_counts_impressions(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app(_ad_seed(None))
    n = 40
    for i in range(n):
        await call(client, f"ad{i}", "ended", caller="13800000009", callee=f"+86137000{i:05d}")
    done = [await settle(client, f"ad{i}:ended") for i in range(n)]
    assert {d["state"] for d in done} == {"delivered"}
    cards = [d["card"] for d in done]
    a, b = cards.count("ad-a"), cards.count("ad-b")
    assert a + b == n and a > b > 0
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    shown = {r["card"]: r["impressions"] for r in report["ads"]}
    assert shown == {"ad-a": a, "ad-b": b}
    # a numbered reply to an ad card is a tap on that card; the report counts it
    last = done[-1]
    await client.post(
        "/api/replies",
        json={"from": last["recipient"], "to": "13800000009", "text": "回复1", "channel": "sms"},
        headers=auth(SF_KEY),
    )
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    taps = {r["card"]: r["taps"] for r in report["ads"]}
    assert taps[last["card"]] == 1 and sum(taps.values()) == 1
    [tap] = report["taps"]
    assert tap["card"] == last["card"] and tap["taps"] == 1 and tap["button"]  # the first button's label


async def test_taps_per_button_from_numbered_replies_and_5g_postbacks(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    await call(client, "tp1", "ended")
    assert (await settle(client, "tp1:ended"))["state"] == "delivered"
    from renderer.templates import TemplateStore
    from tests.support.templates import TEMPLATES

    buttons = TemplateStore(TEMPLATES).get("courier-hangup").render(sample("courier-hangup")).all_suggestions
    for body in (
        {"text": "回复2"},
        {"text": "2"},
        {"text": "", "postback": buttons[0].postback},
        {"text": "谢谢"},
        {"text": "9"},
    ):
        resp = await client.post(
            "/api/replies",
            json={"from": CUSTOMER, "to": "13800000001", "channel": "sms", **body},
            headers=auth(SF_KEY),
        )
        assert resp.status == 200
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    got = {(t["card"], t["button"]): t["taps"] for t in report["taps"]}
    assert got == {("hangup", buttons[1].text): 2, ("hangup", buttons[0].text): 1}
