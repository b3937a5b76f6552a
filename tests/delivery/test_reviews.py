"""Card versions and the operator's review, on both stores: an edit waits while the approved
version keeps being sent; the operator approves or refuses with a note; a refused version is
never sent; trusted notification cards and the operator's own edits are approved as they are
made; marketing cards keep quiet hours; two decisions at once decide once."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from delivery import reviews
from mingpian.api.delivery import delivery_key
from simulators.maap import Simulator
from simulators.smsc import GatewaySim

from .support import CUSTOMER, OPERATOR, RCS_PHONE, SF_KEY, AppFactory, Client, auth, call, sample, settle
from .test_approval import _app as approval_app
from .test_library import _library_card

SF, OP = auth(SF_KEY), auth(OPERATOR)
HANGUP = "/api/enterprises/sf/cards/hangup"


def edited(waybill: str, **more: Any) -> dict[str, Any]:
    """The seeded hang-up card with another waybill number (its text shows it)."""
    data = {**sample("courier-hangup"), "waybill": waybill}
    return {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data, **more}


async def sent_text(client: Client, gateway: GatewaySim, call_id: str) -> str:
    """The text of the hang-up card a call's end sent."""
    await call(client, call_id, "ended")
    d = await settle(client, f"{call_id}:ended")
    assert d["state"] == "delivered", d
    return str(gateway.submitted(CUSTOMER[3:])[-1]["text"])


async def test_an_edit_waits_for_the_operator_while_the_approved_version_is_sent(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    before = await (await client.get(HANGUP, headers=SF)).json()
    assert before["version"] == 1 and before["review"]["state"] == "approved"  # the seed's, approved
    waybill = before["data"]["waybill"]
    resp = await client.put(HANGUP, json=edited("SF2000000000002"), headers=SF)
    body = await resp.json()
    assert resp.status == 200 and body["version"] == 2
    assert (body["review"]["state"], body["review"]["sent_version"]) == ("pending", 1)
    assert body["data"]["waybill"] == "SF2000000000002"  # the enterprise sees what it wrote
    # calls keep getting the approved version
    assert waybill in await sent_text(client, gateway, "v1")
    # the operator's queue: the pending version beside the approved one, with what changed
    queue = await (await client.get("/api/reviews", headers=OP)).json()
    [item] = [r for r in queue["reviews"] if r["card"] == "hangup"]
    assert (item["enterprise"], item["version"], item["approved_version"]) == ("sf", 2, 1)
    assert {"path": "$.data.waybill", "before": waybill, "after": "SF2000000000002"} in item["changes"]
    # only the operator decides; a refusal says why
    assert (
        await client.post(f"{HANGUP}/versions/2/decision", json={"approve": True}, headers=SF)
    ).status == 403
    resp = await client.post(f"{HANGUP}/versions/2/decision", json={"approve": False}, headers=OP)
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$.note"
    resp = await client.post(
        f"{HANGUP}/versions/2/decision", json={"approve": True, "note": "可以"}, headers=OP
    )
    assert resp.status == 200 and (await resp.json())["state"] == "approved"
    # the next call gets it; a second decision on it is refused, naming its state
    assert "SF2000000000002" in await sent_text(client, gateway, "v2")
    again = await client.post(f"{HANGUP}/versions/2/decision", json={"approve": True}, headers=OP)
    assert again.status == 409 and (await again.json())["error"] == "not_pending"
    versions = (await (await client.get(f"{HANGUP}/versions", headers=SF)).json())["versions"]
    assert [(v["version"], v["state"]) for v in versions] == [(1, "superseded"), (2, "approved")]
    log = (await (await client.get("/api/enterprises/sf/audit", headers=OP)).json())["audit"]
    assert any(e["action"] == "approve card version" and e["detail"]["version"] == 2 for e in log)


async def test_a_refused_version_is_never_sent_and_the_enterprise_sees_the_note(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    waybill = (await (await client.get(HANGUP, headers=SF)).json())["data"]["waybill"]
    assert (await client.put(HANGUP, json=edited("SF3000000000003"), headers=SF)).status == 200
    resp = await client.post(
        f"{HANGUP}/versions/2/decision",
        json={"approve": False, "note": "含营销内容，请改为营销名片"},
        headers=OP,
    )
    assert resp.status == 200
    card = await (await client.get(HANGUP, headers=SF)).json()
    assert card["review"]["state"] == "refused" and card["review"]["note"] == "含营销内容，请改为营销名片"
    assert card["review"]["sent_version"] == 1
    text = await sent_text(client, gateway, "r1")
    assert waybill in text and "SF3000000000003" not in text
    assert (await (await client.get("/api/reviews", headers=OP)).json())["reviews"] == []


async def test_a_new_card_is_not_sent_before_it_is_approved(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    assert (await client.delete(HANGUP, headers=OP)).status == 204
    resp = await client.post("/api/enterprises/sf/cards", json=edited("SF4000000000004"), headers=SF)
    assert resp.status == 201 and (await resp.json())["review"]["state"] == "pending"
    assert (await resp.json())["review"]["sent_version"] is None
    listed = (await (await client.get("/api/enterprises/sf/cards", headers=SF)).json())["cards"]
    assert [c["id"] for c in listed if c["review"]["state"] == "pending"] == ["hangup"]
    await call(client, "n1", "ended")
    d = await settle(client, "n1:ended")
    assert d["state"] == "skipped" and d["reason"] == "no card for phase ended"
    version = (await (await client.get(HANGUP, headers=SF)).json())["version"]
    ok = await client.post(f"{HANGUP}/versions/{version}/decision", json={"approve": True}, headers=OP)
    assert ok.status == 200
    assert "SF4000000000004" in await sent_text(client, gateway, "n2")


async def test_trusted_notification_cards_and_the_operators_edits_are_approved_as_made(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    ent = await (await client.get("/api/enterprises/sf", headers=OP)).json()
    # the enterprise cannot trust itself
    resp = await client.put("/api/enterprises/sf", json={**ent, "notification_trusted": True}, headers=SF)
    assert resp.status == 200 and not (await resp.json()).get("notification_trusted")
    resp = await client.put("/api/enterprises/sf", json={**ent, "notification_trusted": True}, headers=OP)
    assert (await resp.json())["notification_trusted"] is True
    card = await (await client.put(HANGUP, json=edited("SF5000000000005"), headers=SF)).json()
    assert card["review"]["state"] == "approved" and card["review"]["decided_by"] == "trusted"
    assert "SF5000000000005" in await sent_text(client, gateway, "t1")
    # marketing cards are always reviewed, and keep the quiet hours
    marketing = edited("SF6000000000006", **{"class": "marketing"})
    card = await (await client.put(HANGUP, json=marketing, headers=SF)).json()
    assert card["review"]["state"] == "pending" and card["review"]["class"] == "marketing"
    # the operator's own edit is approved as it is made (the reviewer made it), and recorded
    card = await (await client.put(HANGUP, json=marketing, headers=OP)).json()
    assert card["review"]["state"] == "approved"
    versions = (await (await client.get(f"{HANGUP}/versions", headers=SF)).json())["versions"]
    assert [v["state"] for v in versions][-2:] == ["replaced", "approved"]
    ent = await (await client.get("/api/enterprises/sf", headers=OP)).json()
    all_day = {"start": "00:00", "end": "23:59"}
    await client.put("/api/enterprises/sf", json={**ent, "policy": {"quiet_hours": all_day}}, headers=OP)
    await call(client, "t2", "ended")
    d = await settle(client, "t2:ended")
    assert d["state"] == "blocked" and d["reason"] == "quiet hours for marketing cards"


async def test_two_operators_deciding_at_once_decide_once(make_app: AppFactory) -> None:
    client = await make_app()
    assert (await client.put(HANGUP, json=edited("SF7000000000007"), headers=SF)).status == 200
    answers = await asyncio.gather(
        *(
            client.post(f"{HANGUP}/versions/2/decision", json=body, headers=OP)
            for body in ({"approve": True}, {"approve": False, "note": "不行"})
        )
    )
    assert sorted(r.status for r in answers) == [200, 409]
    versions = (await (await client.get(f"{HANGUP}/versions", headers=SF)).json())["versions"]
    assert versions[-1]["state"] in ("approved", "refused")
    store = client.app[delivery_key].store
    assert await store.get("card_pending", "sf", "hangup") is None


async def test_bad_decisions_get_clear_errors(make_app: AppFactory) -> None:
    client = await make_app()
    for path, body, status, error in [
        (f"{HANGUP}/versions/9/decision", {"approve": True}, 404, "not_found"),
        (f"{HANGUP}/versions/x/decision", {"approve": True}, 404, "not_found"),
        (f"{HANGUP}/versions/1/decision", {"approve": True}, 409, "not_pending"),  # the seed's, approved
        (f"{HANGUP}/versions/1/decision", {"approve": "yes"}, 422, "invalid"),
        ("/api/enterprises/sf/cards/nope/versions/1/decision", {"approve": True}, 404, "not_found"),
    ]:
        resp = await client.post(path, json=body, headers=OP)
        assert (resp.status, (await resp.json())["error"]) == (status, error), path
    assert (await client.get("/api/reviews", headers=auth(SF_KEY))).status == 403
    assert (await client.get("/api/reviews?limit=0", headers=OP)).status == 400
    assert (await client.get("/api/enterprises/sf/cards/nope/versions", headers=SF)).status == 404


async def test_the_same_content_again_is_no_new_version_and_a_restart_keeps_the_history(
    make_app: AppFactory,
) -> None:
    client = await make_app()
    first = await (await client.put(HANGUP, json=edited("SF8000000000008"), headers=SF)).json()
    again = await (await client.put(HANGUP, json=edited("SF8000000000008"), headers=SF)).json()
    assert first["version"] == again["version"] == 2 and again["review"]["state"] == "pending"
    queue = (await (await client.get("/api/reviews", headers=OP)).json())["reviews"]
    assert [(r["card"], r["version"]) for r in queue] == [("hangup", 2)]
    # a restart loads the same seed: its cards are unchanged, so no version is added
    await client.close()
    restarted = await make_app()
    versions = (await (await restarted.get(f"{HANGUP}/versions", headers=SF)).json())["versions"]
    assert [(v["version"], v["state"]) for v in versions] == [(1, "approved"), (2, "pending")]


def test_what_changed_leaves_out_fields_at_their_defaults_and_those_the_server_keeps() -> None:
    a = {
        "id": "c",
        "phase": "ended",
        "template": "t",
        "class": "notification",
        "kind": "identity",
        "data": {"x": 1},
    }
    b = {
        "id": "c",
        "phase": "ended",
        "template": "t",
        "data": {"x": 2},
        "version": 3,
        "review": {"state": "x"},
    }
    assert reviews.changes(a, b) == [{"path": "$.data.x", "before": 1, "after": 2}]
    assert reviews.same(
        a, {**a, "class": None} | {"class": "notification", "version": 9}
    ) and not reviews.same(a, b)
    assert reviews.changes(None, b)[0] == {"path": "$.class", "before": None, "after": "notification"}


async def _ready(client: Client, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{HANGUP}/readiness{query}", headers=SF)
    assert resp.status == 200, await resp.text()
    return {c["channel"]: c for c in (await resp.json())["channels"]} | {"": await resp.json()}


async def test_readiness_says_per_channel_who_a_version_waits_for(make_app: AppFactory) -> None:
    client = await make_app()
    ready = await _ready(client)
    assert ready[""]["version"] == 1 and ready[""]["state"] == "approved"
    assert {ch: r["state"] for ch, r in ready.items() if ch} == {
        "ussd": "ready",
        "flash": "ready",
        "sms": "ready",
    }
    await client.put(HANGUP, json=edited("SF9000000000009"), headers=SF)
    waiting = await _ready(client)  # the latest version: waits for the operator on every channel
    assert waiting[""]["version"] == 2 and waiting[""]["sent_version"] == 1
    assert {(r["state"], r["by"]) for ch, r in waiting.items() if ch} == {("waiting", "operator")}
    assert (await _ready(client, "?version=1"))["sms"]["state"] == "ready"
    await client.post(
        f"{HANGUP}/versions/2/decision", json={"approve": False, "note": "运单号有误"}, headers=OP
    )
    refused = await _ready(client)
    assert (refused["sms"]["state"], refused["sms"]["by"], refused["sms"]["why"]) == (
        "refused",
        "operator",
        "运单号有误",
    )
    for query, status in (("?version=x", 400), ("?version=7", 404)):
        assert (await client.get(f"{HANGUP}/readiness{query}", headers=SF)).status == status
    assert (await client.get("/api/enterprises/sf/cards/nope/readiness", headers=SF)).status == 404


async def test_readiness_names_the_carrier_a_5g_card_waits_for(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await approval_app(make_app, maap)
    await _library_card(client)  # a new library photo on the card, the version approved
    rcs = (await _ready(client))["rcs"]
    assert (rcs["state"], rcs["by"]) == ("waiting", "carrier:china-unicom")
    await call(client, "rd1", "ended", callee=RCS_PHONE)  # the first send uploads the photo for review
    await settle(client, "rd1:ended")
    await sim.carrier.review.decide(next(iter(sim.carrier.review.waiting)), False, "图片不符合规范")
    rcs = (await _ready(client))["rcs"]
    assert (rcs["state"], rcs["by"]) == ("refused", "carrier:china-unicom") and "图片不符合规范" in rcs["why"]
    assert (await _ready(client))["ussd"]["state"] == "ready"
