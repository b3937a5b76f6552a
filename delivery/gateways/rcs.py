"""5G message (RCS) through the MaaP, sent by the chatbot runtime (its one MaaP client per account).

The card goes as the GSMA botmessage (renderer.rcs) with `smsSupported: true` and `smsContent` =
the card degraded to SMS (renderer.legacy), so the MaaP itself falls back to SMS when the phone
cannot take it. Hence the MaaP accepting the message ends the chain: the card *will* reach the
phone, as a rich card or as that SMS; falling over to USSD as well would show it twice.

The message id is derived from the delivery and step (uuid5), so a resend after a timeout is
deduplicated by the MaaP.

Approval: a card's files are its fixed design, uploaded permanent and named in a send only once
the carrier approved them (chatbot/hosting.py). When one is waiting, refused or expired on the
chatbot's platform the runtime sends nothing and raises NotApproved: the step is skipped with the
reason `not_approved: <carrier>: <file> <state>` and the chain goes on (USSD, flash, SMS).

Capability: before trying RCS the chain asks whether the phone is a 5G-message terminal, in
the chatbot's MaaP dialect (chatbot/capability.py; the path may be set), cached per number for
a TTL; an unanswered lookup counts as "no" — a calling card cannot wait.

Refused after the fact: a carrier that fails a sent card (a `/check` of type message, or a status
report with errorCode 3 or 6) keeps that version of the card off 5G on that carrier, with the
reason `not_approved: <carrier>: card <id> v<n> refused: <description>` (delivery/refusals.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from chatbot.approval import NotApproved
from chatbot.maap import SendResult
from renderer.profiles import CarrierProfile
from renderer.rcs import to_rcs

from . import Handed, Outgoing

_NS = uuid.UUID("8d3c7f5e-5f1e-4d7a-9a86-3c1f0b6b7a11")


class Messaging(Protocol):
    """What delivery needs of the chatbot runtime: its send door and its capability lookup, both
    on the runtime's MaaP client (so one token serves the bot's replies and the cards)."""

    async def send(self, body: dict[str, Any], *, card: bool = False) -> SendResult: ...
    async def approval(self, chatbot: str, body: dict[str, Any]) -> NotApproved | None: ...
    async def capability(self, chatbot: str, contact: str, path: str, timeout: float) -> bool | None: ...
    async def revoke(self, chatbot: str, message_id: str, user: str) -> SendResult: ...
    def carrier(self, chatbot: str) -> str: ...


def message_id(delivery: str, step: int) -> str:
    """The MaaP message id of a delivery's step: stable, so a resend is deduplicated and a
    revoke names the message without a lookup."""
    return str(uuid.uuid5(_NS, f"{delivery}\x1f{step}"))


def tel(number: str) -> str:
    return "tel:" + number  # E.164 already (short codes stay as dialled)


class RcsChannel:
    name = "rcs"

    def __init__(self, messaging: Messaging, profile: CarrierProfile | None = None) -> None:
        self.messaging = messaging
        self.profile = profile

    def body(self, out: Outgoing) -> dict[str, Any]:
        mid = message_id(out.delivery, out.extra.get("step", 0))
        payload = to_rcs(out.message, self.profile) if self.profile else to_rcs(out.message)
        body: dict[str, Any] = {
            "messageId": mid,
            "destinationAddress": [tel(out.destination)],
            "senderAddress": out.chatbot,
            "conversationId": str(uuid.uuid5(_NS, f"{out.chatbot}\x1f{out.destination}")),
            "contributionId": str(uuid.uuid5(_NS, mid)),
            "messageList": payload.message_list(),
            "smsSupported": bool(out.legacy and out.legacy.text),
        }
        if out.legacy and out.legacy.text:
            body["smsContent"] = out.legacy.text
        return body

    async def ready(self, timeout: float) -> bool:
        """The MaaP calls our webhook with its reports; nothing of ours to wait for."""
        return True

    async def send(self, out: Outgoing) -> Handed:
        if not out.chatbot:
            return Handed(False, detail="the enterprise has no chatbot for 5G messages")
        body = self.body(out)
        try:
            result = await self.messaging.send(body, card=True)
        except NotApproved as exc:
            return Handed(False, detail=exc.reason, skipped=True)
        if result.outcome == "ok":
            return Handed(True, (body["messageId"],), "accepted by the MaaP (SMS fallback with it)")
        return Handed(False, detail=f"MaaP: {result.detail}"[:300], retryable=result.outcome == "retry")


class Capabilities:
    """Is this number a 5G-message terminal? Asked through the runtime, cached for `ttl` s."""

    def __init__(
        self, messaging: Messaging, path: str, chatbot: str = "", ttl: float = 86400.0, timeout: float = 0.5
    ) -> None:
        self.messaging = messaging
        self.path = path
        self.chatbot = chatbot
        self.ttl = ttl
        self.timeout = timeout
        self._cache: dict[str, tuple[bool, float]] = {}
        self.lookups = 0

    async def __call__(self, number: str, chatbot: str = "") -> bool:
        now = time.monotonic()
        hit = self._cache.get(number)
        if hit is not None and hit[1] > now:
            return hit[0]
        self.lookups += 1
        capable = await self.messaging.capability(
            chatbot or self.chatbot, tel(number), self.path, self.timeout
        )
        if capable is None:  # an unanswered lookup is not cached: the next call asks again
            return False
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[number] = (capable, now + self.ttl)
        return capable
