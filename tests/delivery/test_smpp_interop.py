"""SMPP against implementations nobody here wrote, and addresses as encoded bytes.

- Addressing vectors: the exact octets of `source_addr_ton … destination_addr` in a submit_sm
  for each plan (national, international), a service code, a 106 code and an alphanumeric name.
- The independent codec (PyPI `smpplib`) reads every PDU kind our client writes, and our codec
  reads what smpplib writes.
- The whole service sends through the `smpp34` package's SMSC (a Rust SMPP core, its own
  framing and session state): USSD, flash and multi-segment SMS are accepted, each numbered as
  the SMSC reads them, and its delivery receipts settle the delivery.
(Kannel's bearerbox against our simulator: test_kannel_real.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34
from smpplib import command as smpplib_command
from smpplib import consts as smpplib_consts

from delivery.gateways import Outgoing
from delivery.gateways import smpp_pdu as smpp
from delivery.gateways.smpp import short_messages
from delivery.gateways.smpp_address import Address, AddressError, Numbering
from delivery.gateways.smpp_pdu import Bind, Pdu, ShortMessage
from renderer.legacy import degrade
from renderer.model import Brand, Card, Message
from simulators import smppcheck
from tests.support.processes import free_port

from .support import CMB_LINE, CUSTOMER, SF_LINE, AppFactory, call, seed_doc, settle


def _address_octets(sm: ShortMessage) -> bytes:
    """The submit_sm body from source_addr_ton to the end of destination_addr."""
    body = sm.encode()
    start = len(sm.service_type) + 1
    end = start + 2 + len(sm.source) + 1 + 2 + len(sm.destination) + 1
    return body[start:end]


@pytest.mark.parametrize(
    ("plan", "source", "destination", "octets"),
    [
        # national plan: 02 01 "13800000001" 00 02 01 "13912345678" 00
        ("national", SF_LINE, CUSTOMER, b"\x02\x0113800000001\x00\x02\x0113912345678\x00"),
        # international: TON 1 with the country code
        ("international", SF_LINE, CUSTOMER, b"\x01\x018613800000001\x00\x01\x018613912345678\x00"),
        # a service code: TON 3 (network specific) / NPI 0
        ("national", "95555", CUSTOMER, b"\x03\x0095555\x00\x02\x0113912345678\x00"),
        ("international", "1069012345", CUSTOMER, b"\x03\x001069012345\x00\x01\x018613912345678\x00"),
        # an alphanumeric sender: TON 5 / NPI 0
        ("national", "SFExpress", CUSTOMER, b"\x05\x00SFExpress\x00\x02\x0113912345678\x00"),
        # a foreign subscriber stays international in the national plan
        ("national", SF_LINE, "+85291234567", b"\x02\x0113800000001\x00\x01\x0185291234567\x00"),
    ],
)
def test_address_octets(plan: str, source: str, destination: str, octets: bytes) -> None:
    n = Numbering(plan)
    src, dst = n.address(source), n.address(destination)
    sm = ShortMessage(src.digits, dst.digits, b"x", 0, 0, 1, "", src.ton, src.npi, dst.ton, dst.npi)
    assert _address_octets(sm) == octets


def test_service_codes_may_be_ton_0_and_bad_senders_are_refused() -> None:
    assert Numbering(service_ton=0).address("95555") == Address("95555", 0, 0)
    with pytest.raises(AddressError):
        Numbering().address("AVeryLongSenderName")
    with pytest.raises(AddressError):
        Numbering().address("+86abc")
    with pytest.raises(AddressError):
        Numbering(plan="e164")


def _outgoing(channel: str, text: str, sender: str = "") -> Outgoing:
    msg = Message(
        "card", (Card(title="取件提醒", description=text),), Brand("顺丰速运", "顺丰"), "t", "hang-up"
    )
    extra = {"sender": sender} if sender else {}
    return Outgoing("d1", channel, SF_LINE, CUSTOMER, msg, degrade(msg, channel), extra=extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("plan", ["national", "international"])
@pytest.mark.parametrize(
    ("channel", "text", "sender"),
    [
        ("ussd", "您的快递已到", ""),
        ("flash", "Your parcel is here", "95555"),
        ("sms", "您的快递已放在小区东门丰巢柜，取件码 123456。" * 6, "SFExpress"),
    ],
)
def test_smpplib_reads_every_submit_the_channels_make(
    plan: str, channel: str, text: str, sender: str
) -> None:
    out = _outgoing(channel, text, sender)
    sms = short_messages(out, numbering=Numbering(plan))
    assert sms and (channel != "sms" or len(sms) > 1)
    for i, sm in enumerate(sms):
        raw = Pdu(smpp.SUBMIT_SM, 0, i + 1, sm.encode()).encode()
        assert smppcheck.problems(raw, sm) == []
        theirs = smppcheck.decode(raw)
        want = "+8613912345678"
        assert (
            smppcheck.reading(theirs.dest_addr_ton, theirs.dest_addr_npi, theirs.destination_addr.decode())
            == want
        )
        if channel == "ussd":
            assert theirs.ussd_service_op == smpp.USSN_REQUEST and theirs.service_type == b"USSD"
        if len(sms) > 1:
            assert theirs.esm_class == smpp.ESM_UDHI and theirs.short_message[:3] == b"\x05\x00\x03"


def test_smpplib_reads_our_session_pdus_and_we_read_its_deliver_sm() -> None:
    for raw in (
        Pdu(smpp.BIND_TRANSCEIVER, 0, 1, Bind("mingpian", "secret").encode()).encode(),
        Pdu(smpp.ENQUIRE_LINK, 0, 2).encode(),
        Pdu(smpp.DELIVER_SM | smpp.RESP, 0, 3, b"\0").encode(),
        Pdu(smpp.UNBIND, 0, 4).encode(),
    ):
        assert smppcheck.problems(raw) == []
    theirs = smpplib_command.DeliverSM(
        "deliver_sm",
        sequence=9,
        source_addr_ton=smpplib_consts.SMPP_TON_INTL,
        source_addr_npi=smpplib_consts.SMPP_NPI_ISDN,
        source_addr="8613912345678",
        dest_addr_ton=smpplib_consts.SMPP_TON_NWSPEC,
        dest_addr_npi=0,
        destination_addr="95555",
        esm_class=smpp.ESM_RECEIPT,
        short_message=b"id:0A1B sub:001 dlvrd:001 submit date:2611251200 done date:2611251200 stat:DELIVRD err:000 text:",
        receipted_message_id="0A1B",
    ).generate()
    ours = ShortMessage.decode(theirs[16:])
    assert (ours.source, ours.source_ton, ours.destination, ours.dest_ton) == ("8613912345678", 1, "95555", 3)
    assert ours.tlvs[smpp.TLV_RECEIPTED_MESSAGE_ID] == b"0A1B\0"


# -- the smpp34 package's SMSC ---------------------------------------------------------------------


class Smpp34Smsc:
    """smpp34's Server as an SMSC: accepts each correctly numbered submit_sm, refuses a
    misnumbered one (0x0A / 0x0B), and sends a DELIVRD receipt for each accepted one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server = smpp34.Server("127.0.0.1", port, system_id="smpp34")
        self.submits: list[Any] = []
        self.refused: list[str] = []
        self.sessions: dict[Any, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._receipts: set[asyncio.Task[Any]] = set()
        self._ids = 0

    async def start(self) -> None:
        await self.server.start()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.server.stop()

    async def _serve(self) -> None:
        while True:
            ev = await self.server.next()
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
            elif isinstance(ev, smpp34.SubmitSmEvent):
                try:
                    await self._submit(ev)
                except Exception as exc:  # kept for the test's assertions; the SMSC keeps serving
                    self.refused.append(f"SMSC side: {exc!r}")

    async def _submit(self, ev: Any) -> None:
        try:
            smppcheck.reading(ev.source_addr_ton, ev.source_addr_npi, ev.source_addr)
        except ValueError as exc:
            self.refused.append(f"source: {exc}")
            ev.reject(smpp34.ESME_RINVSRCADR)
            return
        try:
            smppcheck.reading(ev.dest_addr_ton, ev.dest_addr_npi, ev.destination_addr)
        except ValueError as exc:
            self.refused.append(f"destination: {exc}")
            ev.reject(smpp34.ESME_RINVDSTADR)
            return
        self._ids += 1
        mid = f"S34{self._ids:05d}"
        ev.accept(mid)
        self.submits.append(ev)
        esme = self.sessions.get(ev.session_id)
        if esme is not None and ev.registered_delivery & 1:
            text = f"id:{mid} sub:001 dlvrd:001 submit date:2611301200 done date:2611301200 stat:DELIVRD err:000 text:"
            t = asyncio.ensure_future(  # smpp34 answers with a future of the deliver_sm_resp
                esme.deliver_sm(
                    ev.source_addr,
                    text.encode(),
                    source_addr=ev.destination_addr,
                    source_addr_ton=ev.dest_addr_ton,
                    source_addr_npi=ev.dest_addr_npi,
                    dest_addr_ton=ev.source_addr_ton,
                    dest_addr_npi=ev.source_addr_npi,
                    esm_class=smpp.ESM_RECEIPT,
                )
            )
            self._receipts.add(t)
            t.add_done_callback(self._receipts.discard)


@pytest.fixture
async def smpp34_smsc() -> AsyncIterator[Smpp34Smsc]:
    smsc = Smpp34Smsc(free_port())
    await smsc.start()
    yield smsc
    await smsc.stop()


async def test_the_service_sends_through_the_smpp34_smsc(
    make_app: AppFactory, smpp34_smsc: Smpp34Smsc
) -> None:
    """National plan, USSD from a mobile line and from a bank's service code (TON 3)."""
    seed = seed_doc(policy={"chain": ["ussd"], "timeouts": {"ussd": 5}})
    seed["enterprises"][1]["policy"] = {"chain": ["ussd"], "timeouts": {"ussd": 5}}
    client = await make_app(seed, delivery_smpp=f"127.0.0.1:{smpp34_smsc.port}")
    await call(client, "i1", "ringing")
    d = await settle(client, "i1:ringing")
    assert d["state"] == "delivered" and d["channel"] == "ussd", d
    [ev] = smpp34_smsc.submits
    assert smpp34_smsc.refused == []
    assert (ev.source_addr, ev.source_addr_ton, ev.source_addr_npi) == ("13800000001", 2, 1)
    assert (ev.destination_addr, ev.dest_addr_ton, ev.dest_addr_npi) == ("13912345678", 2, 1)
    await call(client, "i2", "ringing", caller=CMB_LINE)
    d2 = await settle(client, "i2:ringing")
    assert d2["state"] == "delivered", [a["detail"] for a in d2["attempts"]]
    last = smpp34_smsc.submits[-1]
    assert (last.source_addr, last.source_addr_ton, last.source_addr_npi) == ("95555", 3, 0)


async def test_international_plan_and_a_named_sender_through_the_smpp34_smsc(
    make_app: AppFactory, smpp34_smsc: Smpp34Smsc
) -> None:
    """International plan; a long SMS from the enterprise's alphanumeric sender, every segment."""
    seed = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 5}})
    seed["enterprises"][0]["sms_sender"] = "SFExpress"
    client = await make_app(
        seed, delivery_smpp=f"127.0.0.1:{smpp34_smsc.port}", delivery_smpp_numbering="international"
    )
    await call(client, "i3", "ended")
    d = await settle(client, "i3:ended")
    assert d["state"] == "delivered" and d["channel"] == "sms", d
    assert smpp34_smsc.refused == [] and len(smpp34_smsc.submits) > 1
    for ev in smpp34_smsc.submits:
        assert (ev.source_addr, ev.source_addr_ton, ev.source_addr_npi) == ("SFExpress", 5, 0)
        assert (ev.destination_addr, ev.dest_addr_ton, ev.dest_addr_npi) == ("8613912345678", 1, 1)
