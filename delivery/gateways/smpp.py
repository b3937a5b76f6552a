"""USSD, flash SMS and SMS through an SMSC over SMPP 3.4 (the account's sessions: smpp_pool.py).

- USSD: one submit_sm with the `ussd_service_op` TLV (0x0501) = 3, USSN request (a network-
  initiated notify: shown at once, no session to answer). data_coding is the SMPP alphabet
  (0x00 GSM-7 / 0x08 UCS-2); the CBS DCS of the radio interface is the SMSC's business.
- flash: data_coding 0x10 (GSM-7, class 0; some SMSCs want 0xF0: a setting) or 0x18 (UCS-2,
  class 0), one segment (renderer.legacy fits it).
- SMS: one submit_sm per segment of renderer.gsm's segmentation; with several segments each
  carries its 6-octet UDH in short_message and esm_class 0x40.
Every submit asks for a receipt (registered_delivery 1). GSM-7 goes as one septet per octet,
the SMPP convention for the SMSC default alphabet. Source and destination are numbered by the
account's plan (smpp_address.py); the source is the chain's choice (brand.source_of): the
enterprise's approved `sms_sender`, else a verified line, else the platform's sender, where an
empty one leaves `source_addr` to the SMSC.

No submit leaves after the attempt's deadline (`Outgoing.extra["deadline"]`, when the chain
stops waiting for a receipt and falls over): one sent later could show the card twice. Waiting
for a session, a throttling pause or a rate slot is bounded by it and by the pool's `wait`.
"""

from __future__ import annotations

import time

from . import Handed, Outgoing
from . import smpp_pdu as smpp
from .smpp_address import Address, AddressError, Numbering
from .smpp_pdu import ShortMessage
from .smpp_pool import SmppPool

DEFAULT_NUMBERING = Numbering()


def _message(src: Address, dst: Address, data: bytes, dcs: int, **kw: object) -> ShortMessage:
    return ShortMessage(
        src.digits,
        dst.digits,
        data,
        dcs,
        registered_delivery=1,
        source_ton=src.ton,
        source_npi=src.npi,
        dest_ton=dst.ton,
        dest_npi=dst.npi,
        **kw,  # type: ignore[arg-type]
    )


def short_messages(
    out: Outgoing, flash_gsm_dcs: int = 0x10, numbering: Numbering = DEFAULT_NUMBERING
) -> list[ShortMessage]:
    """The submit_sm of one outgoing card. Raises AddressError for a number SMPP cannot carry."""
    lt = out.legacy
    if lt is None:
        raise ValueError("a legacy channel needs the degraded text")
    src = numbering.source(out.extra.get("sender", out.source))
    dst = numbering.address(out.destination)
    ucs2 = lt.encoding == "UCS-2"
    encode = (lambda t: t.encode("utf-16-be", "surrogatepass")) if ucs2 else smpp.text_to_septets
    if out.channel == "ussd":
        return [
            _message(
                src,
                dst,
                encode(lt.text),
                0x08 if ucs2 else 0x00,
                service_type="USSD",
                tlvs={smpp.TLV_USSD_SERVICE_OP: bytes((smpp.USSN_REQUEST,))},
            )
        ]
    dcs = (0x18 if ucs2 else flash_gsm_dcs) if out.channel == "flash" else (0x08 if ucs2 else 0x00)
    segs = lt.segments
    if len(segs) == 1:
        return [_message(src, dst, encode(segs[0].text), dcs)]
    return [
        _message(src, dst, bytes.fromhex(s.udh_hex) + encode(s.text), dcs, esm_class=smpp.ESM_UDHI)
        for s in segs
    ]


class SmppChannel:
    """One of ussd / flash / sms over the account's shared SMPP sessions."""

    def __init__(
        self, name: str, pool: SmppPool, flash_gsm_dcs: int = 0x10, numbering: Numbering = DEFAULT_NUMBERING
    ) -> None:
        self.name = name
        self.pool = pool
        self.flash_gsm_dcs = flash_gsm_dcs
        self.numbering = numbering

    async def ready(self, timeout: float) -> bool:
        """Receipts the SMSC kept while we were away come once a session is bound again."""
        return await self.pool.wait_bound(timeout)

    def unbound(self, since: float, now: float) -> float:
        """Seconds since `since` with no session bound: no receipt could come meanwhile."""
        return self.pool.unbound(since, now)

    async def send(self, out: Outgoing) -> Handed:
        end = time.monotonic() + self.pool.wait
        if "deadline" in out.extra:  # the attempt's, in wall-clock time
            end = min(end, time.monotonic() + float(out.extra["deadline"]) - time.time())
        ids: list[str] = []
        try:
            messages = short_messages(out, self.flash_gsm_dcs, self.numbering)
        except AddressError as exc:  # no SMSC would take it: give up on this channel
            return Handed(False, (), str(exc))
        for sm in messages:
            res = await self.pool.submit(sm, end)  # throttling is retried there, until `end`
            if not res.ok:
                # Segments already accepted stay accepted; their receipts are recorded too.
                retryable = res.status in smpp.RETRYABLE
                return Handed(False, tuple(ids), res.detail, retryable, unanswered=not res.answered)
            ids.append(res.message_id)
        return Handed(True, tuple(ids))
