"""Nothing reaches a phone before its carrier approved it: a card whose new library photo waits
for the carrier's review goes out on USSD with the reason in its attempts (and in the dry run)
until the MaaP simulator passes the photo, then as a 5G message; a refused photo keeps the card
off 5G on that carrier; a carrier that never answers leaves the file waiting. Both delivery
stores."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from simulators.maap import Simulator

from .support import OPERATOR, RCS_PHONE, SF_LINE, AppFactory, auth, call, maap_settings, rcs_seed, settle
from .test_library import _library_card

TOKEN = "approval-test-token"


async def _app(make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]) -> Any:
    sim, server, _ = maap
    sim.carrier.review.mode = "hold"  # the carrier decides only when told
    client = await make_app(
        rcs_seed(), **maap_settings(sim, server), webhook_csp_token=TOKEN, maap_approval_wait=0.2
    )
    sim.csp_token = TOKEN
    sim.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    return client


def _rcs(d: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in d["attempts"] if a["channel"] == "rcs")


async def _dry_rcs(client: Any) -> dict[str, Any]:
    r = await client.post(
        "/api/enterprises/sf/dry-run",
        json={"line": SF_LINE, "to": RCS_PHONE, "phase": "ended"},
        headers=auth(OPERATOR),
    )
    assert r.status == 200, await r.text()
    return next(c for c in (await r.json())["channels"] if c["channel"] == "rcs")


async def test_a_new_photo_keeps_the_card_off_5g_until_the_carrier_passes_it(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    await _library_card(client)
    assert (await _dry_rcs(client))["skipped"].endswith(" unsubmitted")
    for n in (1, 2):  # the carrier has not answered: the file waits, the card goes out on USSD
        await call(client, f"ap{n}", "ended", callee=RCS_PHONE)
        d = await settle(client, f"ap{n}:ended")
        assert d["state"] == "delivered" and d["channel"] == "ussd", d
        rcs = _rcs(d)
        assert rcs["state"] == "skipped" and rcs["detail"].startswith("not_approved: china-unicom: ")
        assert rcs["detail"].endswith(" waiting")
    [upload] = sim.carrier.uploads  # uploaded once, permanent
    assert upload.mode == "perm" and sim.received == []
    assert (await _dry_rcs(client))["skipped"].endswith(" waiting")

    await sim.carrier.review.decide(next(iter(sim.carrier.review.waiting)), True)
    assert [status for _, status in sim.carrier.review.answers] == [200]
    assert "skipped" not in await _dry_rcs(client)
    await call(client, "ap3", "ended", callee=RCS_PHONE)
    d = await settle(client, "ap3:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs", d
    assert len(sim.received) == 1 and len(sim.carrier.uploads) == 1
    assert sim.stats()["unapprovedSends"] == 0


async def test_a_refused_photo_sends_the_card_on_ussd_with_the_reason(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, _, _ = maap
    client = await _app(make_app, maap)
    await _library_card(client)
    await call(client, "rf1", "ended", callee=RCS_PHONE)
    await settle(client, "rf1:ended")
    await sim.carrier.review.decide(next(iter(sim.carrier.review.waiting)), False, "图片不符合规范")
    await call(client, "rf2", "ended", callee=RCS_PHONE)
    d = await settle(client, "rf2:ended")
    assert d["channel"] == "ussd" and _rcs(d)["detail"].endswith(" refused"), d
    assert (await _dry_rcs(client))["skipped"] == _rcs(d)["detail"]
    resp = await client.get("/api/calls/rf2", headers=auth(OPERATOR))
    [shown] = (await resp.json())["deliveries"]
    assert any(a["detail"].startswith("not_approved: ") for a in shown["attempts"])
    assert sim.received == [] and len(sim.carrier.uploads) == 1
