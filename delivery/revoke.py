"""Taking back a pre-call 5G card that came too late to matter.

A pre-call (ringing) card is dropped on SMPP once the call is answered or ended (chain.py). A
5G message is handed to the MaaP instead, and once it accepted it the chain is over — so when the
call is answered or ended while such a card is out there, the MaaP is asked to revoke it
(CT/CU `…/revoke`, China Mobile a `RevokeRequested` status, GSMA a `cancelled` status; see
chatbot/maap.py), unless the enterprise's policy says `revoke: false`. It runs in two places:
when the answered/ended event arrives (for cards already accepted), and right after a hand-over
that finished after that event (for cards that were in flight).

The attempt records it (`revoke`): `requested` (the MaaP took the request), then `revoked` or
`failed` from its status report (revokeOk / revokeFail), or `refused` (it refused the request;
the reason goes to the log). Reports count a requested or revoked card as `revoked`. The units
charged stay charged: the MaaP accepted and may have shown the card.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from chatbot.events import StatusReport

from .gateways.rcs import Messaging, message_id, tel
from .records import Delivery
from .storage import DeliveryStore

log = logging.getLogger("mingpian.delivery.revoke")
RESULTS = {"revokeOk": "revoked", "revokeFail": "failed"}


class Revoker:
    def __init__(self, store: DeliveryStore, messaging: Messaging | None) -> None:
        self.store = store
        self.messaging = messaging
        self.requested = 0

    async def call_moved_on(self, call_id: str) -> None:
        """The call was answered or ended: take back its accepted pre-call 5G cards."""
        for d in await self.store.deliveries_of_call(call_id):
            if d.phase == "ringing" and d.state == "delivered" and d.channel == "rcs":
                await self.revoke(d)

    async def revoke(self, d: Delivery) -> None:
        if self.messaging is None:
            return
        ent = await self.store.get("enterprise", "", d.enterprise) or {}
        if (ent.get("policy") or {}).get("revoke", True) is False or not ent.get("chatbot"):
            return
        att = next(
            (
                a
                for a in reversed(await self.store.attempts(d.id))
                if a.channel == "rcs" and a.state == "delivered"
            ),
            None,
        )
        if att is None or att.revoke:
            return
        result = await self.messaging.revoke(ent["chatbot"], message_id(d.id, att.step), tel(d.recipient))
        self.requested += 1
        state = "requested" if result.outcome == "ok" else "refused"
        if state == "refused":
            log.warning("delivery %s: the MaaP refused to revoke its pre-call card: %s", d.id, result.detail)
        async with self.store.tx():
            await self.store.update_attempt(att.id, day=att.day, revoke=state)
        await self.store.durable()

    async def on_status(self, reports: Iterable[StatusReport]) -> None:
        """Revoke results from the MaaP's status reports, onto the attempts they concern."""
        for r in reports:
            result = RESULTS.get(r.status)
            if result is None:
                continue
            found = await self.store.attempt_of_message(r.message_id)  # (attempt, its message id's day)
            if found is not None:  # rare: by id alone, whatever day the message id was written
                async with self.store.tx():
                    await self.store.update_attempt(found[0], revoke=result)
        await self.store.durable()
