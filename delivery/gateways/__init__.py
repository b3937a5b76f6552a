"""Gateways a card goes out through, one `Channel` per channel name: SMPP (USSD, flash, SMS),
Kannel (flash, SMS) and the MaaP (5G messages). Each takes one outgoing message and answers
with the gateway's message ids (receipts refer to them) or why it could not be handed over.

    smpp_pdu.py       the SMPP 3.4 codec (PDUs, framing, GSM-7 septets)
    smpp_receipts.py  delivery receipts in deliver_sm
    smpp_client.py    the ESME session (bind, submit window, throttling pause, deliver_sm)
    smpp_pool.py      an account's sessions in this process (binds, resends after throttling)
    smpp_rate.py      an account's submit rate, in-process or shared through Redis
    smpp.py           the USSD / flash / SMS channels over those sessions
    kannel.py         flash / SMS through Kannel's sendsms
    rcs.py            5G messages through the chatbot runtime's MaaP client; capability lookups
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from renderer.legacy import LegacyText
from renderer.model import Message


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery: str
    channel: str
    source: str  # the enterprise line (E.164 or short code)
    destination: str  # the person (E.164)
    message: Message
    legacy: LegacyText | None  # the degraded text for ussd/flash/sms (and RCS's SMS fallback)
    chatbot: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Handed:
    ok: bool
    message_ids: tuple[str, ...] = ()
    detail: str = ""
    retryable: bool = False
    skipped: bool = False  # not sent, and the channel cannot take it now (`detail`: the reason)
    # no answer (the session closed or timed out after the submit left): it may have gone out,
    # so its receipt, matched by the recipient, is waited for until the deadline, never resent
    unanswered: bool = False


class Channel(Protocol):
    name: str

    async def send(self, out: Outgoing) -> Handed: ...

    async def ready(self, timeout: float) -> bool:
        """Whether the gateway can take submits and hand us receipts, waiting up to `timeout`
        (an SMSC session bound). A restarted chain waits for it before its receipt grace."""
        ...
