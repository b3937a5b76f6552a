"""Revoking a pre-call 5G card the MaaP accepted when the call is answered (or ended) first:
the MaaP simulator gets the revoke, the attempt records it and then the platform's result, the
reports count it; an enterprise may turn it off. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from delivery.gateways.rcs import message_id
from mingpian.api.delivery import delivery_key
from simulators.maap import Fault, Simulator

from .support import OPERATOR, RCS_PHONE, AppFactory, auth, call, maap_settings, rcs_seed, settle

TOKEN = "revoke-test-token"  # the CT/CU signature the platform signs its callbacks with


async def _app(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]], revoke: bool = True
) -> Any:
    sim, server, _ = maap
    seed = rcs_seed()
    if not revoke:
        seed["enterprises"][0]["policy"]["revoke"] = False
    client = await make_app(
        seed,
        **maap_settings(sim, server),
        webhook_csp_token=TOKEN,
    )
    sim.csp_token, sim.reports = TOKEN, True  # status reports (the revoke's result) come back
    sim.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    return client


async def _attempt(client: Any, did: str, until: str = "", timeout: float = 5.0) -> dict[str, Any]:
    """The delivery's RCS attempt (as `GET /api/calls/{id}` shows it), once its `revoke` is
    `until` (any when empty)."""
    call_id, _, phase = did.partition(":")
    for _ in range(int(timeout / 0.02)):
        resp = await client.get(f"/api/calls/{call_id}", headers=auth(OPERATOR))
        d = next(d for d in (await resp.json())["deliveries"] if d["phase"] == phase)
        att = next(a for a in d["attempts"] if a["channel"] == "rcs")
        if att["revoke"] == until or not until:
            return att
        await asyncio.sleep(0.02)
    raise AssertionError(f"revoke of {did} never became {until!r}: {att}")


async def test_a_pre_call_card_accepted_before_the_answer_is_revoked_and_reported(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    await call(client, "rv1", "ringing", callee=RCS_PHONE)
    d = await settle(client, "rv1:ringing")
    assert d["state"] == "delivered" and d["channel"] == "rcs"
    assert (await _attempt(client, "rv1:ringing"))["revoke"] == ""
    await call(client, "rv1", "answered", callee=RCS_PHONE)
    att = await _attempt(client, "rv1:ringing", "revoked")  # requested, then the platform's revokeOk
    [revoke] = sim.carrier.revokes
    assert revoke.dialect == "csp" and revoke.user == "tel:" + RCS_PHONE
    assert revoke.message_id == message_id("rv1:ringing", att["step"]) == sim.received[0].message_id
    resp = await client.get("/api/enterprises/sf/report", headers=auth(OPERATOR))
    rows = [r for r in (await resp.json())["attempts"] if r["channel"] == "rcs"]
    assert [r["outcome"] for r in rows] == ["revoked"]


async def test_an_enterprise_that_turned_revoking_off_keeps_its_card(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap, revoke=False)
    await call(client, "rv2", "ringing", callee=RCS_PHONE)
    assert (await settle(client, "rv2:ringing"))["channel"] == "rcs"
    await call(client, "rv2", "ended", callee=RCS_PHONE)
    await settle(client, "rv2:ended")
    await asyncio.sleep(0.2)
    assert sim.carrier.revokes == [] and (await _attempt(client, "rv2:ringing"))["revoke"] == ""


async def test_a_revoke_the_maap_refuses_is_recorded_as_refused(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    await call(client, "rv3", "ringing", callee=RCS_PHONE)
    await settle(client, "rv3:ringing")
    sim.seen_ids.clear()  # the platform no longer knows the message: it refuses the revoke
    await call(client, "rv3", "answered", callee=RCS_PHONE)
    assert (await _attempt(client, "rv3:ringing", "refused"))["revoke"] == "refused"
    assert client.app[delivery_key].revoker.requested == 1


async def test_a_card_whose_hand_over_ends_after_the_answer_is_revoked_right_after(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    sim.fault = Fault(mode="slow", delay=1.0, remaining=1)  # the MaaP takes a second to accept
    await call(client, "rv4", "ringing", callee=RCS_PHONE)
    await asyncio.sleep(0.3)
    await call(client, "rv4", "answered", callee=RCS_PHONE)  # while the card is in flight
    d = await settle(client, "rv4:ringing")  # the MaaP accepted it: delivered, then taken back
    assert d["channel"] == "rcs"
    att = await _attempt(client, "rv4:ringing", "revoked")
    assert att["state"] == "delivered"
    assert [r.message_id for r in sim.carrier.revokes] == [sim.received[0].message_id]
