"""USSD, flash SMS and SMS through an SMSC over SMPP 3.4 (one bound transceiver session).

- USSD: one submit_sm with the `ussd_service_op` TLV (0x0501) = 3, USSN request (a network-
  initiated notify: shown at once, no session to answer). data_coding is the SMPP alphabet
  (0x00 GSM-7 / 0x08 UCS-2); the CBS DCS of the radio interface is the SMSC's business.
- flash: data_coding 0x10 (GSM-7, class 0; some SMSCs want 0xF0: a setting) or 0x18 (UCS-2,
  class 0), one segment (renderer.legacy fits it).
- SMS: one submit_sm per segment of renderer.gsm's segmentation; with several segments each
  carries its 6-octet UDH in short_message and esm_class 0x40.
Every submit asks for a receipt (registered_delivery 1). GSM-7 goes as one septet per octet,
the SMPP convention for the SMSC default alphabet.
"""

from __future__ import annotations

import asyncio

from ..model import national
from . import Handed, Outgoing
from . import smpp_pdu as smpp
from .smpp_client import SmppClient
from .smpp_pdu import ShortMessage


def short_messages(out: Outgoing, flash_gsm_dcs: int = 0x10) -> list[ShortMessage]:
    lt = out.legacy
    if lt is None:
        raise ValueError("a legacy channel needs the degraded text")
    src, dst = national(out.source), national(out.destination)
    ucs2 = lt.encoding == "UCS-2"
    encode = (lambda t: t.encode("utf-16-be", "surrogatepass")) if ucs2 else smpp.text_to_septets
    src_ton = 1 if src.startswith("1") and len(src) == 11 else 0  # short codes: unknown TON
    if out.channel == "ussd":
        return [
            ShortMessage(
                src,
                dst,
                encode(lt.text),
                0x08 if ucs2 else 0x00,
                registered_delivery=1,
                source_ton=src_ton,
                service_type="USSD",
                tlvs={smpp.TLV_USSD_SERVICE_OP: bytes((smpp.USSN_REQUEST,))},
            )
        ]
    dcs = (0x18 if ucs2 else flash_gsm_dcs) if out.channel == "flash" else (0x08 if ucs2 else 0x00)
    segs = lt.segments
    if len(segs) == 1:
        return [ShortMessage(src, dst, encode(segs[0].text), dcs, registered_delivery=1, source_ton=src_ton)]
    return [
        ShortMessage(
            src,
            dst,
            bytes.fromhex(s.udh_hex) + encode(s.text),
            dcs,
            esm_class=smpp.ESM_UDHI,
            registered_delivery=1,
            source_ton=src_ton,
        )
        for s in segs
    ]


class SmppChannel:
    """One of ussd / flash / sms over a shared SMPP session."""

    def __init__(self, name: str, client: SmppClient, flash_gsm_dcs: int = 0x10) -> None:
        self.name = name
        self.client = client
        self.flash_gsm_dcs = flash_gsm_dcs

    async def send(self, out: Outgoing) -> Handed:
        ids: list[str] = []
        for sm in short_messages(out, self.flash_gsm_dcs):
            for attempt in range(4):
                res = await self.client.submit(sm)
                if res.ok or res.status not in (smpp.STATUS_THROTTLED, smpp.STATUS_MSGQFUL) or attempt == 3:
                    break
                await asyncio.sleep(0.05 * 2**attempt)  # throttled / queue full: back off, retry
            if not res.ok:
                # Segments already accepted stay accepted; their receipts are recorded too.
                return Handed(False, tuple(ids), res.detail, res.status in smpp.RETRYABLE)
            ids.append(res.message_id)
        return Handed(True, tuple(ids))
