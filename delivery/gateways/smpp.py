"""USSD, flash SMS and SMS through an SMSC over SMPP 3.4 (the account's sessions: smpp_pool.py).

- USSD: one submit_sm with the `ussd_service_op` TLV (0x0501) = 3, USSN request (a network-
  initiated notify: shown at once, no session to answer). data_coding is the SMPP alphabet
  (0x00 GSM-7 / 0x08 UCS-2); the CBS DCS of the radio interface is the SMSC's business.
- flash: data_coding 0x10 (GSM-7, class 0; some SMSCs want 0xF0: a setting) or 0x18 (UCS-2,
  class 0), one segment (renderer.legacy fits it).
- SMS: one submit_sm per segment of renderer.gsm's segmentation; with several segments each
  carries its 6-octet UDH in short_message and esm_class 0x40.
Every submit asks for a receipt (registered_delivery 1). GSM-7 goes as one septet per octet,
the SMPP convention for the SMSC default alphabet.

No submit leaves after the attempt's deadline (`Outgoing.extra["deadline"]`, when the chain
stops waiting for a receipt and falls over): one sent later could show the card twice. Waiting
for a session, a throttling pause or a rate slot is bounded by it and by the pool's `wait`.
"""

from __future__ import annotations

import time

from ..model import national
from . import Handed, Outgoing
from . import smpp_pdu as smpp
from .smpp_pdu import ShortMessage
from .smpp_pool import SmppPool


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
    """One of ussd / flash / sms over the account's shared SMPP sessions."""

    def __init__(self, name: str, pool: SmppPool, flash_gsm_dcs: int = 0x10) -> None:
        self.name = name
        self.pool = pool
        self.flash_gsm_dcs = flash_gsm_dcs

    async def send(self, out: Outgoing) -> Handed:
        end = time.monotonic() + self.pool.wait
        if "deadline" in out.extra:  # the attempt's, in wall-clock time
            end = min(end, time.monotonic() + float(out.extra["deadline"]) - time.time())
        ids: list[str] = []
        for sm in short_messages(out, self.flash_gsm_dcs):
            res = await self.pool.submit(sm, end)  # throttling is retried there, until `end`
            if not res.ok:
                # Segments already accepted stay accepted; their receipts are recorded too.
                return Handed(False, tuple(ids), res.detail, res.status in smpp.RETRYABLE)
            ids.append(res.message_id)
        return Handed(True, tuple(ids))
