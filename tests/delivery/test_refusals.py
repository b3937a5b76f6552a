"""A card its carrier refused after it was sent, on both stores: the MaaP simulator fails a sent
card (a `/check` of type message, or a status report with errorCode 3); the next call's card skips
5G on that carrier with the reason and goes out on USSD; the dry run shows the same reason; the
same failure twice changes nothing; an unknown message is ignored; the operator clears the
refusal (audited) and the card goes as 5G again; a new approved version may go at once."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from simulators.maap import Simulator

from .support import OPERATOR, RCS_PHONE, SF_KEY, SF_LINE, AppFactory, Client, auth, call, settle
from .test_approval import _app as approval_app
from .test_reviews import HANGUP, edited

OP, SF = auth(OPERATOR), auth(SF_KEY)
REFUSALS = "/api/enterprises/sf/cards/hangup/carrier-refusals"
PREFIX = "not_approved: china-unicom: card hangup v1 refused: "


async def _app(make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]) -> Client:
    client: Client = await approval_app(make_app, maap)
    maap[0].carrier.review.mode = "auto"  # the seed's card names no new media: nothing to hold
    return client


async def _sent(client: Client, sim: Simulator, call_id: str) -> str:
    """A call whose card goes out as 5G; its message id."""
    await call(client, call_id, "ended", callee=RCS_PHONE)
    d = await settle(client, f"{call_id}:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs" and d["card"] == "hangup", d
    return str(sim.received[-1].body["messageId"])


async def _skipped(client: Client, call_id: str) -> str:
    """A call whose card skips 5G and goes out on a legacy channel (USSD, or flash when USSD's
    receipt is late on a busy machine); the rcs step's reason."""
    await call(client, call_id, "ended", callee=RCS_PHONE)
    d = await settle(client, f"{call_id}:ended")
    assert d["state"] == "delivered" and d["channel"] in ("ussd", "flash", "sms"), d
    [rcs] = [a for a in d["attempts"] if a["channel"] == "rcs"]
    assert rcs["state"] == "skipped", rcs
    return str(rcs["detail"])


async def _dry_rcs(client: Client) -> dict[str, Any]:
    r = await client.post(
        "/api/enterprises/sf/dry-run", json={"line": SF_LINE, "to": RCS_PHONE, "phase": "ended"}, headers=OP
    )
    assert r.status == 200, await r.text()
    return next(c for c in (await r.json())["channels"] if c["channel"] == "rcs")


async def _ready_rcs(client: Any) -> dict[str, Any]:
    resp = await client.get("/api/enterprises/sf/cards/hangup/readiness", headers=SF)
    assert resp.status == 200, await resp.text()
    return next(c for c in (await resp.json())["channels"] if c["channel"] == "rcs")


async def test_a_card_failed_after_the_fact_skips_5g_until_the_operator_clears_it(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    mid = await _sent(client, sim, "m1")
    review = sim.carrier.review
    for _ in (1, 2):  # the same failure twice: one refusal, one audit entry
        assert await review.check("message", False, f"messageId: {mid}", "内容违规") == 200
    assert await review.check("message", False, "messageId: not-one-of-ours", "内容违规") == 200
    refusals = (await (await client.get(REFUSALS, headers=SF)).json())["refusals"]
    assert [(r["carrier"], r["version"], r["state"], r["message_id"]) for r in refusals] == [
        ("china-unicom", 1, "refused", mid)
    ]
    assert await _skipped(client, "m2") == PREFIX + "内容违规"
    assert (await _dry_rcs(client))["skipped"] == PREFIX + "内容违规"
    assert len(sim.received) == 1
    rcs = await _ready_rcs(client)  # the card's readiness says the same
    assert (rcs["state"], rcs["by"], rcs["why"]) == ("refused", "carrier:china-unicom", "内容违规")

    assert (await client.delete(REFUSALS + "/china-unicom", headers=SF)).status == 403
    assert (await client.delete(REFUSALS + "/china-mobile", headers=OP)).status == 404
    r = await client.delete(REFUSALS + "/china-unicom", headers=OP)
    assert r.status == 200 and (await r.json())["state"] == "cleared"
    assert "skipped" not in await _dry_rcs(client)
    assert (await _ready_rcs(client))["state"] == "ready"
    await _sent(client, sim, "m3")
    # the cleared decision arriving again does not refuse the card anew
    assert await review.check("message", False, f"messageId: {mid}", "内容违规") == 200
    await _sent(client, sim, "m4")
    audit = (await (await client.get("/api/enterprises/sf/audit", headers=OP)).json())["audit"]
    actions = [(a["actor"], a["action"]) for a in audit if a["target"] == "card:hangup"]
    assert actions.count(("carrier:china-unicom", "carrier refused card")) == 1
    assert ("operator", "clear carrier refusal") in actions


async def test_a_status_report_refusing_the_content_refuses_the_card_until_a_new_version(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    mid = await _sent(client, sim, "s1")
    assert await sim.carrier.review.report_refused(mid, 3) == 200
    assert await _skipped(client, "s2") == PREFIX + "errorCode 3: content not compliant"
    # a new version, approved (the operator's own edit), is new content: it may go again
    assert (await client.put(HANGUP, json=edited("SF2000000000002"), headers=OP)).status == 200
    await _sent(client, sim, "s3")
