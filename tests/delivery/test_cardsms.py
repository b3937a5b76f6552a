"""Card SMS end to end, on both stores: the hang-up card of a verified line, registered as a
template once the vendors (the card-SMS simulator) approved it, goes to a number on a simulated
Huawei phone as one SMS with its parse link; the simulator draws it and the delivery says
displayed (charged); a phone that cannot show card SMS gets the next step, plain SMS, with the
reason in the skipped attempt. Callbacks that are forged, stale or replayed are refused and
change nothing; a vendor refusing the template keeps only its own phones off it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from delivery.gateways.cardsms_sign import callback_headers, callback_signature
from mingpian.api.delivery import delivery_key
from simulators.cardsms import CardSmsSim

from .support import (
    OPERATOR,
    SF_LINE,
    AppFactory,
    Client,
    GatewaySim,
    Rule,
    auth,
    call,
    sample,
    seed_doc,
    settle,
)

HUAWEI_PHONE = "+8613912340001"
OPPO_PHONE = "+8613912340002"
PLAIN_PHONE = "+8613912340003"  # a phone no vendor draws card SMS on
CB_SECRET = "cb-secret"


@pytest.fixture
async def cardsim(aiohttp_server: Any) -> AsyncIterator[tuple[CardSmsSim, str]]:
    sim = CardSmsSim(callback_secret=CB_SECRET)
    sim.set_phone(HUAWEI_PHONE, "HuaWei")
    sim.set_phone(OPPO_PHONE, "OPPO")
    server = await aiohttp_server(sim.app())
    yield sim, str(server.make_url("")).rstrip("/")
    await sim.close()


def card_seed(units: int = 100) -> dict[str, Any]:
    now = time.time()
    return seed_doc(
        policy={"chain": ["cardsms", "sms"], "timeouts": {"cardsms": 3, "sms": 0.8}},
        packages=[
            {
                "id": "pool1",
                "kind": "pool",
                "units": units,
                "price": 5.0,
                "policy": "stop",
                "valid_from": now - 86400,
                "valid_to": now + 86400,
            }
        ],
    )


async def card_app(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str], **overrides: Any
) -> Client:
    sim, url = cardsim
    client: Client = await make_app(
        card_seed(),
        delivery_cardsms_url=url,
        delivery_cardsms_app_key="cs-key",
        delivery_cardsms_app_secret="cs-secret",
        delivery_cardsms_callback_secret=CB_SECRET,
        **overrides,
    )
    sim.callback = str(client.make_url("/api/cardsms/koomessage"))
    gateway.on_delivered.append(sim.delivered)
    return client


async def registered(client: Client, sim: CardSmsSim, timeout: float = 5.0) -> dict[str, Any]:
    """Register the hang-up card's version on request and wait until the vendors answered."""
    r = await client.post("/api/enterprises/sf/cards/hangup/versions/1/cardsms", headers=auth(OPERATOR))
    assert r.status == 200, await r.text()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = await (
            await client.get("/api/enterprises/sf/cards/hangup/versions/1/cardsms", headers=auth(OPERATOR))
        ).json()
        if sim.mode == "hold" or all(v["state"] != "waiting" for v in got["vendors"]):
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"vendors never answered: {got}")


async def test_a_hangup_card_on_a_huawei_phone_is_displayed_and_charged(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    sim, _ = cardsim
    client = await card_app(make_app, gateway, cardsim)
    got = await registered(client, sim)
    assert {v["vendor"]: v["state"] for v in got["vendors"]}["HuaWei"] == "approved"
    [tpl] = sim.templates.values()
    assert tpl.body["card_sign_name"] == "顺丰速运"
    assert any(
        c["type"] == "button" and c["actionType"] == "OPEN_BROWSER" for c in tpl.body["pages"][0]["tmpCards"]
    )

    await call(client, "cs1", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(client, "cs1:ended")
    assert d["state"] == "displayed" and d["channel"] == "cardsms", d
    [att] = d["attempts"]
    assert att["state"] == "displayed" and att["units"] == 1, att
    [sms] = gateway.submitted()  # one SMS, one segment, the signature and the parse link
    [link] = sim.links.values()
    assert sms["text"].startswith("【顺丰速运】") and sms["text"].endswith(link.url.removeprefix("https://"))
    assert len(sms["text"]) <= 70 and sms["udh"] == ""
    assert link.params["title1"].startswith("您的快递") and link.mobile == "13912340001"
    page = await client.app[delivery_key].links.resolve(link.custom_url.rsplit("/", 1)[1])
    assert page is not None and (page.kind, page.delivery, page.channel) == ("card", "cs1:ended", "cardsms")
    assert sim.calls["check"] == 1 and sim.calls["resolve"] == 1
    usage = await (await client.get("/api/enterprises/sf/usage?by=channel", headers=auth(OPERATOR))).json()
    rows = usage if isinstance(usage, list) else usage.get("usage", usage.get("rows", []))
    assert any(r.get("channel") == "cardsms" and r["units"] == 1 for r in rows), usage
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(OPERATOR))).json()
    assert [(a["channel"], a["outcome"], a["attempts"]) for a in report["attempts"]] == [
        ("cardsms", "displayed", 1)
    ]
    r = await client.post(
        "/api/enterprises/sf/estimate",
        json={"template": "courier-hangup", "data": sample("courier-hangup"), "count": 10},
        headers=auth(OPERATOR),
    )
    costs = {c["channel"]: c for c in (await r.json())["channels"]}
    assert costs["cardsms"]["segments"] == 1 and costs["cardsms"]["units"] == 10, costs
    for _ in range(200):  # the render callback answered: the funnel heard it there
        if ("send-status", 200) in sim.answers:
            break
        await asyncio.sleep(0.01)
    funnel = client.app[delivery_key].funnel  # displayed once per render: already recorded
    assert not await funnel.displayed("cs1:ended", 0, "cardsms", "sf", time.time(), how="cardsms")


async def test_a_phone_that_cannot_show_card_sms_gets_plain_sms(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    sim, _ = cardsim
    client = await card_app(make_app, gateway, cardsim)
    await registered(client, sim)
    await call(client, "cs2", "ended", caller=SF_LINE, callee=PLAIN_PHONE)
    d = await settle(client, "cs2:ended")
    assert d["state"] == "delivered" and d["channel"] == "sms", d
    skipped, sms = d["attempts"]
    assert skipped["channel"] == "cardsms" and skipped["state"] == "skipped"
    assert skipped["detail"] == "the phone cannot show card SMS"
    assert sms["state"] == "delivered" and sms["channel"] == "sms"
    assert sim.calls["resolve"] == 0 and not sim.rendered
    for to, shown in ((PLAIN_PHONE, False), (HUAWEI_PHONE, True)):  # the dry run says the same
        r = await client.post(
            "/api/enterprises/sf/dry-run",
            json={"line": SF_LINE, "to": to, "phase": "ended"},
            headers=auth(OPERATOR),
        )
        [step] = [c for c in (await r.json())["channels"] if c["channel"] == "cardsms"]
        if shown:
            assert step["approved_by"] == ["HuaWei", "MEIZU", "OPPO", "SAMSUNG", "VIVO", "XiaoMi"], step
            assert step["text"].startswith("【顺丰速运】您的快递") and step["dync_params"]["title1"]
        else:
            assert step["skipped"] == "the phone cannot show card SMS", step
    assert sim.calls["resolve"] == 0 and not gateway.submitted(HUAWEI_PHONE[3:])  # nothing sent


async def test_a_template_refused_by_one_vendor_keeps_only_its_phones_off(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    sim, _ = cardsim
    sim.mode = "hold"
    client = await card_app(make_app, gateway, cardsim)
    await registered(client, sim)
    # waiting for every vendor: no card SMS at all, the reason says so
    await call(client, "cs3", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(client, "cs3:ended")
    assert d["attempts"][0]["detail"] == "no vendor approved the card-SMS template yet", d
    assert await sim.decide(None, "refuse", "OPPO", "按钮文案不符合规范") == 1
    assert await sim.decide(None, "approve", "HuaWei") == 1
    got = await (
        await client.get("/api/enterprises/sf/cards/hangup/versions/1/cardsms", headers=auth(OPERATOR))
    ).json()
    states = {v["vendor"]: (v["state"], v["why"]) for v in got["vendors"]}
    assert states["OPPO"] == ("refused", "按钮文案不符合规范") and states["HuaWei"] == ("approved", "")
    assert states["XiaoMi"] == ("waiting", "")
    ready = await (
        await client.get("/api/enterprises/sf/cards/hangup/readiness", headers=auth(OPERATOR))
    ).json()
    [cs] = [c for c in ready["channels"] if c["channel"] == "cardsms"]
    assert cs["state"] == "ready" and "OPPO: 按钮文案不符合规范" in cs["why"] and len(cs["vendors"]) == 6
    await call(client, "cs4", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    await call(client, "cs5", "ended", caller=SF_LINE, callee=OPPO_PHONE)
    huawei, oppo = await settle(client, "cs4:ended"), await settle(client, "cs5:ended")
    assert huawei["state"] == "displayed", huawei
    assert oppo["channel"] == "sms" and oppo["attempts"][0]["detail"] == "the phone cannot show card SMS", (
        oppo
    )


async def test_forged_stale_and_replayed_callbacks_are_refused_and_change_nothing(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    sim, _ = cardsim
    sim.mode = "hold"
    client = await card_app(make_app, gateway, cardsim)
    await registered(client, sim)
    [tpl_id] = sim.templates
    body = json.dumps(
        {"tpl_id": tpl_id, "audit_state": 2, "factory_info": [{"factory_type": "HuaWei", "state": 1}]}
    ).encode()
    path = "/api/cardsms/koomessage/template-status"

    async def vendors() -> dict[str, str]:
        got = await (
            await client.get("/api/enterprises/sf/cards/hangup/versions/1/cardsms", headers=auth(OPERATOR))
        ).json()
        return {v["vendor"]: v["state"] for v in got["vendors"]}

    forged = callback_headers("not-the-secret", body)
    r = await client.post(path, data=body, headers=forged)
    assert r.status == 401 and (await r.json())["error"] == "bad_signature"
    tampered = callback_headers(CB_SECRET, body)
    r = await client.post(path, data=body.replace(b'"state": 1', b'"state": 2'), headers=tampered)
    assert r.status == 401 and (await r.json())["error"] == "bad_signature"
    r = await client.post(path, data=body, headers=callback_headers(CB_SECRET, body, time.time() - 900))
    assert r.status == 401 and (await r.json())["error"] == "stale_callback"
    assert (await vendors())["HuaWei"] == "waiting"
    good = callback_headers(CB_SECRET, body)
    r = await client.post(path, data=body, headers=good)
    assert r.status == 200, await r.text()
    assert (await vendors())["HuaWei"] == "approved"
    # the same callback again, as captured: refused; a fresh one saying the opposite under the old nonce too
    r = await client.post(path, data=body, headers=good)
    assert r.status == 409 and (await r.json())["error"] == "replayed"
    refuse = body.replace(b'"state": 1', b'"state": 2')
    again = callback_headers(CB_SECRET, refuse)
    again["X-Nonce"] = good["X-Nonce"]
    again["X-Signature"] = callback_signature(CB_SECRET, again["X-Timestamp"], again["X-Nonce"], refuse)
    r = await client.post(path, data=refuse, headers=again)
    assert r.status == 409
    assert (await vendors())["HuaWei"] == "approved"
    for odd, status in ((json.dumps({"tpl_id": tpl_id, "factory_info": 7}).encode(), 200), (b"[1]", 400)):
        r = await client.post(path, data=odd, headers=callback_headers(CB_SECRET, odd))  # signed, but odd
        assert r.status == status, await r.text()
    assert (await vendors())["HuaWei"] == "approved"
    # a forged render receipt for a real attempt changes nothing either
    sim.templates[tpl_id].vendors["HuaWei"] = "approved"  # as the good callback said
    await call(client, "cs6", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    gateway.on_delivered.clear()  # the simulator does not draw it: only a forgery would
    d = await settle(client, "cs6:ended", timeout=10)
    [link] = sim.links.values()
    fake = json.dumps({"callback_type": "shortchain", "aim_code": link.code, "aim_url": link.url,
                       "cust_flag": link.cust_flag, "status": "0"}).encode()  # fmt: skip
    r = await client.post(
        "/api/cardsms/koomessage/send-status", data=fake, headers=callback_headers("x", fake)
    )
    assert r.status == 401
    assert d["state"] == "delivered" and d["attempts"][0]["state"] == "delivered", d
    assert d["attempts"][0]["detail"].startswith("receipt DELIVRD; no render receipt")
    # not drawn within the render window: its unit, held at send, was given back
    usage = await (await client.get("/api/enterprises/sf/usage?by=channel", headers=auth(OPERATOR))).json()
    rows = usage if isinstance(usage, list) else usage.get("usage", usage.get("rows", []))
    assert not [r for r in rows if r.get("channel") == "cardsms" and r["units"]], usage
    packages = await (await client.get("/api/enterprises/sf/report", headers=auth(OPERATOR))).json()
    assert [p["used"] for p in packages["packages"]] == [0], packages["packages"]


async def test_a_render_receipt_alone_displays_and_an_smsc_failure_moves_on(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    """The render receipt may come before the SMSC's, or without it: the card was drawn. An SMSC
    failure fails the attempt (refunded) and the next step sends plain SMS."""
    sim, _ = cardsim
    client = await card_app(make_app, gateway, cardsim)
    await registered(client, sim)
    national = HUAWEI_PHONE[3:]
    gateway.set_rules([Rule(action="drop", destination=national, times=1)])  # no SMSC receipt
    await call(client, "cs7", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    for _ in range(300):
        if gateway.submitted(national):
            break
        await asyncio.sleep(0.01)
    [sms] = gateway.submitted(national)
    sim.delivered(national, sms["text"])  # the phone drew it; the SMSC never said
    d = await settle(client, "cs7:ended")
    assert d["state"] == "displayed" and d["attempts"][0]["units"] == 1, d
    gateway.set_rules([Rule(action="fail", channel="sms", destination=national, stat="UNDELIV", times=1)])
    await call(client, "cs8", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(client, "cs8:ended")
    card, text = d["attempts"]
    assert (card["channel"], card["state"], card["detail"]) == ("cardsms", "failed", "receipt UNDELIV"), d
    assert text["channel"] == "sms" and d["state"] == "delivered", d
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(OPERATOR))).json()
    assert [p["used"] for p in report["packages"]] == [1 + text["units"]], report["packages"]


async def test_a_new_signature_registers_the_template_again(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str]
) -> None:
    """The template's signature must be the one sent: once the enterprise's brand changes, its
    card SMS waits for a template under the new signature, and then speaks with it."""
    sim, _ = cardsim
    client = await card_app(make_app, gateway, cardsim)
    await registered(client, sim)
    store = client.app[delivery_key].store
    ent = await store.get("enterprise", "", "sf")
    await store.put("enterprise", "", "sf", {**ent, "signature": "顺丰"})
    await store.durable()
    await call(client, "cs9", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(client, "cs9:ended")
    assert d["attempts"][0]["detail"] == (
        "the enterprise's signature changed: the card-SMS template was submitted again"
    ), d
    for _ in range(300):
        doc = await client.app[delivery_key].cardsms.template_of("sf", "hangup", 1)
        if doc["sign"] == "顺丰" and all(v["state"] == "approved" for v in doc["vendors"].values()):
            break
        await asyncio.sleep(0.02)
    assert len(sim.templates) == 2
    await call(client, "cs10", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(client, "cs10:ended")
    assert d["state"] == "displayed", d
    assert gateway.submitted(HUAWEI_PHONE[3:])[-1]["text"].startswith("【顺丰】")


async def test_two_workers_share_render_receipts_and_nonces(
    make_app: AppFactory, gateway: GatewaySim, cardsim: tuple[CardSmsSim, str], backend: dict[str, Any]
) -> None:
    """On a fleet (PostgreSQL and Redis) the vendor calls back whichever worker its load balancer
    picks: a render receipt heard by one worker displays the card whose chain waits on another,
    and a callback replayed to the other worker is refused there too."""
    if not backend:
        pytest.skip("one process owns a SQLite file: nothing to share")
    sim, url = cardsim
    a = await card_app(make_app, gateway, cardsim)
    b: Client = await make_app(
        card_seed(),
        delivery_cardsms_url=url,
        delivery_cardsms_app_key="cs-key",
        delivery_cardsms_app_secret="cs-secret",
        delivery_cardsms_callback_secret=CB_SECRET,
    )
    sim.callback = str(b.make_url("/api/cardsms/koomessage"))  # every callback reaches worker b
    await registered(a, sim)
    await call(a, "cs11", "ended", caller=SF_LINE, callee=HUAWEI_PHONE)
    d = await settle(a, "cs11:ended")
    assert d["state"] == "displayed", d
    for _ in range(200):  # worker b answered the render callback (after it was durable)
        if ("send-status", 200) in sim.answers:
            break
        await asyncio.sleep(0.01)
    assert sim.answers.count(("send-status", 200)) == 1, sim.answers
    body = json.dumps({"tpl_id": "nothing", "factory_info": []}).encode()
    headers = callback_headers(CB_SECRET, body)
    r = await b.post("/api/cardsms/koomessage/template-status", data=body, headers=headers)
    assert r.status == 404  # not our template, but its nonce is spent
    r = await a.post("/api/cardsms/koomessage/template-status", data=body, headers=headers)
    assert r.status == 409 and (await r.json())["error"] == "replayed"
