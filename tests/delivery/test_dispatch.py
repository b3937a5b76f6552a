"""Channel chains through the gateway simulator over real SMPP: fallback on a failure receipt
and on a timeout, charging once, idempotent events, pre-call drops, resume after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

from delivery.gateways import smpp_pdu as smpp
from mingpian.api.delivery import delivery_key
from simulators.smsc import GatewaySim, Rule

from .support import (
    CMB_LINE,
    CUSTOMER,
    OPERATOR,
    AppFactory,
    auth,
    call,
    seed_doc,
    settle,
)


async def _submitted(client: Any, delivery: str) -> None:
    """Wait until the delivery's first attempt was handed to the gateway (and no receipt yet)."""
    for _ in range(300):
        att = await client.app[delivery_key].store.attempt(delivery, 0)
        if att is not None and att.state == "submitted":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{delivery}: first attempt not submitted: {att}")


async def test_ussd_fails_then_flash_within_its_timeout_is_charged_once(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("fail", channel="ussd", stat="UNDELIV")])
    client = await make_app()
    ack = await call(client, "c1", "ringing")
    assert ack["duplicate"] is False and ack["state"] == "active"
    d = await settle(client, "c1:ringing")
    assert d["state"] == "delivered" and d["channel"] == "flash"
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("ussd", "failed"), ("flash", "delivered")]
    assert d["attempts"][0]["detail"] == "receipt UNDELIV"
    ussd, flash = gateway.submitted(CUSTOMER[3:])
    assert ussd["channel"] == "ussd" and ussd["ussd_service_op"] == smpp.USSN_REQUEST
    assert flash["channel"] == "flash" and flash["data_coding"] == 0x18  # UCS-2, class 0
    assert flash["registered_delivery"] == 1 and flash["source"] == "13800000001"
    # the verified line speaks with the enterprise's brand; the staff member's data is on the card
    assert flash["text"].startswith("【顺丰速运】") and "陈思远" in flash["text"]
    # charged once: the failed USSD attempt was refunded, the delivered flash stays charged
    balances = await client.app[delivery_key].meter.balances("sf")
    assert balances[0]["used"] == 1
    usage = await client.app[delivery_key].meter.usage("sf", ("channel",))
    assert usage == [{"channel": "flash", "messages": 1, "units": 1, "overage_units": 0, "cost": 0.05}]
    # a redelivered receipt changes nothing
    assert client.app[delivery_key].store is not None  # the store is reachable
    await client.app[delivery_key].receipts.accept(flash["message_id"], "DELIVRD")
    assert (await client.app[delivery_key].meter.balances("sf"))[0]["used"] == 1


async def test_no_receipt_falls_over_after_the_channel_timeout(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("drop", channel="ussd")])
    client = await make_app()
    await call(client, "c2", "ringing")
    d = await settle(client, "c2:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [
        ("ussd", "timeout"),
        ("flash", "delivered"),
    ]
    assert (await client.app[delivery_key].meter.balances("sf"))[0]["used"] == 1


async def test_the_same_event_three_times_sends_one_card(make_app: AppFactory, gateway: GatewaySim) -> None:
    client = await make_app()
    acks = await asyncio.gather(*(call(client, "c3", "ringing") for _ in range(3)))
    assert sorted(a["duplicate"] for a in acks) == [False, True, True]
    await settle(client, "c3:ringing")
    await asyncio.sleep(0.1)
    assert len(gateway.submitted(CUSTOMER[3:])) == 1


async def test_pre_call_card_dropped_when_the_call_ends_first(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("drop", channel="ussd", times=1)])
    client = await make_app(
        seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 5, "flash": 5}})
    )
    await call(client, "c4", "ringing")
    await _submitted(client, "c4:ringing")  # the USSD is out, no receipt yet
    await call(client, "c4", "ended")
    d = await settle(client, "c4:ringing")
    assert d["state"] == "dropped" and d["reason"] == "call ended before the card arrived"
    hangup = await settle(client, "c4:ended")
    assert hangup["state"] == "delivered", (hangup["reason"], hangup["attempts"])
    channels = [s["channel"] for s in gateway.submitted(CUSTOMER[3:])]
    assert channels == ["ussd", "ussd"]  # the pre-call USSD, then the hang-up card; no late flash


async def test_restart_in_the_middle_of_a_fallback_chain_resumes_without_resending(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("drop", channel="ussd")])
    first = await make_app(
        seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 1.5, "flash": 2}})
    )
    await call(first, "c5", "ringing")
    await _submitted(first, "c5:ringing")
    await first.close()  # the server stops while waiting for the USSD receipt
    second = await make_app()
    d = await settle(second, "c5:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [
        ("ussd", "timeout"),
        ("flash", "delivered"),
    ]
    assert [s["channel"] for s in gateway.submitted(CUSTOMER[3:])] == ["ussd", "flash"]
    assert (await second.app[delivery_key].meter.balances("sf"))[0]["used"] == 1


async def test_receipt_arriving_while_the_server_is_down_is_applied_after_restart(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("deliver", channel="ussd", delay=0.3)])
    first = await make_app()
    await call(first, "c6", "ringing")
    await _submitted(first, "c6:ringing")
    await first.close()
    await asyncio.sleep(0.3)  # the SMSC keeps the receipt until we bind again
    second = await make_app()
    d = await settle(second, "c6:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("ussd", "delivered")]
    assert len(gateway.submitted(CUSTOMER[3:])) == 1


async def test_a_chain_resumed_past_its_deadline_waits_for_the_smsc_bind_before_falling_over(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    """Down past the USSD deadline, then the SMSC takes a while to accept the bind: the receipt
    it kept comes right after the bind, so the grace before falling over counts from the bind,
    not from the restart (else the flash card is a second card to a person who has the first)."""
    gateway.set_rules([Rule("deliver", channel="ussd", delay=0.3)])
    first = await make_app(seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 1.0}}))
    await call(first, "c8", "ringing")
    await _submitted(first, "c8:ringing")
    await first.close()
    await asyncio.sleep(1.5)  # the receipt is kept by the SMSC; the USSD deadline passes
    gateway.bind_delay = 2.5  # the SMSC takes a while to answer the bind
    second = await make_app()  # returns once bound
    d = await settle(second, "c8:ringing", timeout=15.0)
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("ussd", "delivered")]
    assert [s["channel"] for s in gateway.submitted(CUSTOMER[3:])] == ["ussd"]


async def test_a_receipt_for_a_chain_resumed_after_a_restart_is_applied_long_before_its_timeout(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    """The restarted server did not submit the message itself: on one SQLite file it finds the
    message id in its store; on PostgreSQL (where another worker may have submitted it) it tells
    the other workers and, as none knows it, finds its waiting attempt in the store a second
    later. Either way well before the channel's 30 s timeout."""
    gateway.set_rules([Rule("deliver", channel="ussd", delay=1.5)])
    first = await make_app(seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 30}}))
    await call(first, "c7", "ringing")
    await _submitted(first, "c7:ringing")
    await first.close()  # the receipt comes after the restart, to a server that never saw the submit
    second = await make_app()
    d = await settle(second, "c7:ringing", timeout=6.0)
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("ussd", "delivered")]
    assert len(gateway.submitted(CUSTOMER[3:])) == 1


async def test_pool_exhausted_under_stop_policy_sends_nothing_and_says_why(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    import time

    seed = seed_doc(
        packages=[
            {
                "id": "tiny",
                "units": 1,
                "policy": "stop",
                "price": 0.1,
                "valid_from": time.time() - 10,
                "valid_to": time.time() + 3600,
            }
        ]
    )
    client = await make_app(seed)
    await call(client, "p1", "ringing")
    assert (await settle(client, "p1:ringing"))["state"] == "delivered"
    await call(client, "p2", "ringing", callee="+8613911112222")
    d = await settle(client, "p2:ringing")
    assert d["state"] == "blocked" and d["reason"] == "quota: package used up"
    assert d["attempts"][0]["state"] == "refused"
    assert gateway.submitted("13911112222") == []


async def test_overage_policy_goes_on_and_meters_the_overage(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    import time

    seed = seed_doc(
        packages=[
            {
                "id": "small",
                "units": 1,
                "policy": "overage",
                "price": 0.1,
                "overage_price": 0.1,
                "valid_from": time.time() - 10,
                "valid_to": time.time() + 3600,
            }
        ]
    )
    client = await make_app(seed)
    for i in range(3):
        await call(client, f"o{i}", "ringing", callee=f"+861391111000{i}")
    for i in range(3):
        assert (await settle(client, f"o{i}:ringing"))["state"] == "delivered"
    [b] = await client.app[delivery_key].meter.balances("sf")
    assert (b["used"], b["overage"], b["remaining"]) == (1, 2, 0)


async def test_long_sms_goes_out_in_udh_segments_and_is_charged_per_segment(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    seed = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 1}})
    client = await make_app(seed)
    await call(client, "s1", "ended")
    d = await settle(client, "s1:ended")
    assert d["state"] == "delivered"
    parts = gateway.submitted(CUSTOMER[3:])
    assert len(parts) >= 2 and d["attempts"][0]["segments"] == len(parts)
    for i, p in enumerate(parts, 1):
        assert (
            p["esm_class"] & 0x40 and p["udh"][:6] == "050003" and p["udh"][-4:] == f"{len(parts):02X}{i:02X}"
        )
    assert (await client.app[delivery_key].meter.balances("sf"))[0]["used"] == len(parts)


async def test_a_hotline_called_by_a_customer_and_an_unverified_line_shows_the_number(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    resp = await client.post(
        f"/api/enterprises/sf/lines/{'+8613800000001'}/verify",
        json={"verified": False, "note": "certificate expired"},
        headers=auth(OPERATOR),
    )
    assert resp.status == 200
    await call(client, "v1", "ringing")
    await settle(client, "v1:ringing")
    [sub] = gateway.submitted(CUSTOMER[3:])
    assert sub["text"].startswith("【138 0000 0001】")  # the number as people read it
    # the bank's short code is the callee: the customer calling 95555 is the one who gets the card
    await call(client, "v2", "ringing", caller=CUSTOMER, callee=CMB_LINE)
    d = await settle(client, "v2:ringing")
    assert d["recipient"] == CUSTOMER and d["enterprise"] == "cmb"
