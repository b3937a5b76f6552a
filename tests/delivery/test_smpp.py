"""The SMPP 3.4 codec: PDU layouts, TLVs, UDH, receipts (text and TLV forms), GSM-7 septets,
and the client session against the simulator (bind refused, reconnect after the SMSC drops us)."""

from __future__ import annotations

import asyncio

import pytest

from delivery.gateways import smpp_client, smpp_receipts
from delivery.gateways import smpp_pdu as smpp
from delivery.gateways.smpp_pdu import ShortMessage
from simulators.smsc import GatewaySim

from .support import numbered_sm


def test_submit_sm_round_trip_with_tlvs() -> None:
    sm = ShortMessage(
        "95555",
        "13912345678",
        "您好".encode("utf-16-be"),
        0x18,
        registered_delivery=1,
        tlvs={smpp.TLV_USSD_SERVICE_OP: b"\x03"},
    )
    raw = smpp.Pdu(smpp.SUBMIT_SM, 0, 7, sm.encode()).encode()
    length, cmd, status, seq = smpp.HEADER.unpack(raw[:16])
    assert (length, cmd, status, seq) == (len(raw), 4, 0, 7)
    back = ShortMessage.decode(raw[16:])
    assert back.text() == "您好" and back.data_coding == 0x18 and back.tlvs[0x0501] == b"\x03"
    assert (back.source, back.destination, back.registered_delivery) == ("95555", "13912345678", 1)


def test_long_payload_moves_to_message_payload_tlv() -> None:
    sm = ShortMessage("1", "2", b"x" * 300)
    back = ShortMessage.decode(sm.encode())
    assert back.short_message == b"x" * 300 and smpp.TLV_MESSAGE_PAYLOAD in back.tlvs


def test_udh_is_split_from_the_text() -> None:
    udh = bytes.fromhex("0500030A0201")
    sm = ShortMessage("1", "2", udh + smpp.text_to_septets("Hello {world}"), 0, esm_class=0x40)
    assert sm.udh == udh and sm.text() == "Hello {world}"
    assert smpp.text_to_septets("{") == b"\x1b\x28"  # extension table: ESC + code


@pytest.mark.parametrize(
    ("text", "tlvs", "stat"),
    [
        (
            b"id:0A1B sub:001 dlvrd:001 submit date:2611251200 done date:2611251200 stat:DELIVRD err:000 text:",
            {},
            "DELIVRD",
        ),
        (
            b"id:0A1B sub:001 dlvrd:000 submit date:2611251200 done date:2611251200 stat:UNDELIV err:001 text:x",
            {},
            "UNDELIV",
        ),
        (b"", {smpp.TLV_RECEIPTED_MESSAGE_ID: b"0A1B\0", smpp.TLV_MESSAGE_STATE: b"\x08"}, "REJECTD"),
    ],
)
def test_receipts_parse_from_text_or_tlvs(text: bytes, tlvs: dict[int, bytes], stat: str) -> None:
    r = smpp_receipts.parse_receipt(ShortMessage("2", "1", text, esm_class=smpp.ESM_RECEIPT, tlvs=tlvs))
    assert r is not None and r.message_id == "0A1B" and r.stat == stat and r.final


def test_a_mobile_originated_message_is_not_a_receipt() -> None:
    assert smpp_receipts.parse_receipt(ShortMessage("2", "1", b"TD")) is None


def test_truncated_bodies_are_pdu_errors() -> None:
    good = ShortMessage("1", "2", b"abc").encode()
    with pytest.raises(smpp.PduError):
        ShortMessage.decode(good[:10])


async def test_client_binds_refuses_wrong_password_and_reconnects() -> None:
    sim = GatewaySim(password="secret")
    port = await sim.start()
    got: list[ShortMessage] = []

    async def on_deliver(sm: ShortMessage) -> None:
        got.append(sm)

    bad = smpp_client.SmppClient("127.0.0.1", port, "mingpian", "wrong", on_deliver, timeout=0.5)
    bad.start()
    assert not await bad.wait_bound(0.3)
    await bad.close()
    client = smpp_client.SmppClient("127.0.0.1", port, "mingpian", "secret", on_deliver, timeout=1.0)
    client.start()
    assert await client.wait_bound(2)
    res = await client.submit(numbered_sm(b"hi"))
    assert res.ok and res.message_id
    sim.kick()  # the SMSC drops the session: the client rebinds by itself
    await asyncio.sleep(0.05)
    assert await client.wait_bound(3)
    res2 = await client.submit(numbered_sm(b"again"))
    assert res2.ok and sim.binds >= 2
    want = {res.message_id, res2.message_id}
    for _ in range(200):  # a receipt the dropped session had not acknowledged comes again: a set
        if {smpp_receipts.parse_receipt(g).message_id for g in got} == want:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    assert {smpp_receipts.parse_receipt(g).message_id for g in got} == want  # type: ignore[union-attr]
    await client.close()
    await sim.stop()


async def test_enquire_link_keeps_the_session_alive_and_a_dead_link_is_rebound() -> None:
    """enquire_link goes out every `keepalive` seconds; one left unanswered past `timeout`
    means the link is dead: the client drops it and binds again."""
    sim = GatewaySim(password="secret")
    port = await sim.start()

    async def on_deliver(sm: ShortMessage) -> None:
        pass

    client = smpp_client.SmppClient(
        "127.0.0.1", port, "mingpian", "secret", on_deliver, keepalive=0.05, timeout=0.2
    )
    client.start()
    assert await client.wait_bound(2)
    for _ in range(100):
        if sim.enquire_links >= 3:
            break
        await asyncio.sleep(0.01)
    assert sim.enquire_links >= 3 and client.bound and sim.binds == 1  # answered: the same session
    sim.answer_enquire_link = False  # the SMSC stalls
    for _ in range(200):
        if client.state == "down":
            break
        await asyncio.sleep(0.01)
    assert client.state == "down" and "TimeoutError" in client.detail
    sim.answer_enquire_link = True
    for _ in range(200):
        if client.bound and sim.binds >= 2:
            break
        await asyncio.sleep(0.01)
    assert client.bound and sim.binds >= 2
    res = await client.submit(numbered_sm(b"hi"))
    assert res.ok
    await client.close()
    await sim.stop()
