"""A card its carrier refused after the fact: kept off 5G on that carrier until the operator clears
it or a new version of the card is approved.

A carrier may fail a 5G message after accepting it: a `/check` of type message with result fail,
or a status report with errorCode 3 or 6 (chatbot/approval.py). The chatbot runtime hands that
decision here (its message listeners, wired by the app factory); the message id names one of our
attempts, whose delivery names the enterprise, the card and the version sent. The refusal is a
document (`card_refusal`, id `<card>@<carrier>`) in the delivery store, so every worker sees it and
reads it from its document cache (a change drops every worker's cache): checking it before a
5G step costs a call event no store read.

    {"card", "carrier", "version", "state": "refused" | "cleared", "description", "at",
     "message_id", "delivery", "cleared_by"?, "cleared_at"?}

Only the refused version is kept off: a new version is new content and may go again. The same
decision twice changes nothing; a refusal the operator cleared stays cleared when the same
message's decision arrives again (only another message's refusal refuses the card anew).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from chatbot.approval import Decision

from .storage import DeliveryStore

log = logging.getLogger("mingpian.delivery.refusals")
KIND = "card_refusal"
Carrier = Callable[[str], str]  # an enterprise's chatbot → the carrier profile it sends through


def doc_id(card: str, carrier: str) -> str:
    return f"{card}@{carrier}"


def reason_of(doc: dict[str, Any]) -> str:
    """The skip reason, under the prefix every not-approved 5G step shares."""
    return (
        f"not_approved: {doc['carrier']}: card {doc['card']} v{doc['version']} refused: {doc['description']}"
    )


class CardRefusals:
    def __init__(self, store: DeliveryStore, carrier: Carrier) -> None:
        self.store = store
        self.carrier = carrier

    async def reason(self, enterprise: str, card: str, version: int, chatbot: str) -> str:
        """Why this version of the card may not go as 5G through `chatbot` ("" : it may). Read
        from the document cache."""
        doc = await self.standing(enterprise, card, version, chatbot)
        return reason_of(doc) if doc is not None else ""

    async def standing(self, enterprise: str, card: str, version: int, chatbot: str) -> dict[str, Any] | None:
        """The carrier's refusal of this version through `chatbot` that still stands, or None."""
        doc = await self.store.get(KIND, enterprise, doc_id(card, self.carrier(chatbot)))
        if doc is None or doc.get("state") != "refused" or int(doc.get("version", 0)) != version:
            return None
        return doc

    async def on_message(self, d: Decision) -> None:
        """The carrier's verdict on a message we sent: a refusal of one of our cards is recorded
        against that card's version on that carrier; anything else changes nothing."""
        if d.kind != "message" or d.passed:
            return
        mid = d.ref.removeprefix("message:")
        found = await self.store.attempt_of_message(mid) if mid else None  # the attempt and its day
        att = (await self.store.attempt_receipts(*found))[0] if found is not None else None
        delivery = await self.store.delivery(att.delivery) if att is not None else None
        if att is None or delivery is None or att.channel != "rcs":
            log.info("the carrier refused message %s, which is none of our cards: ignored", mid[:100])
            return
        ent = await self.store.get("enterprise", "", delivery.enterprise) or {}
        carrier = self.carrier(str(ent.get("chatbot", "")))
        version = int(delivery.data.get("version", 1))
        key = doc_id(delivery.card, carrier)
        old = await self.store.get(KIND, delivery.enterprise, key)
        if old is not None and (
            old.get("message_id") == mid  # this decision again (cleared since, or not)
            or int(old.get("version", 0)) > version  # a newer version's refusal stands
            or (old.get("state") == "refused" and int(old.get("version", 0)) == version)
        ):
            return
        doc = {
            "card": delivery.card,
            "carrier": carrier,
            "version": version,
            "state": "refused",
            "description": d.description or "refused",
            "at": d.at,
            "message_id": mid,
            "delivery": delivery.id,
        }
        async with self.store.tx():
            await self.store.put(KIND, delivery.enterprise, key, doc)
            await self.store.audit(
                f"carrier:{carrier}",
                delivery.enterprise,
                f"card:{delivery.card}",
                "carrier refused card",
                {"version": version, "description": doc["description"], "message": mid},
            )
        await self.store.durable()
        log.warning(
            "%s refused card %s v%d of %s: %s",
            carrier,
            delivery.card,
            version,
            delivery.enterprise,
            d.description,
        )

    async def of_card(self, enterprise: str, card: str) -> list[dict[str, Any]]:
        """The card's refusals on every carrier (cleared ones too), newest first."""
        docs = [r for r in await self.store.list(KIND, enterprise) if r.get("card") == card]
        return sorted(docs, key=lambda r: -float(r.get("at", 0)))

    async def clear(self, enterprise: str, card: str, carrier: str, actor: str) -> dict[str, Any] | None:
        """The operator lets the card go as 5G on `carrier` again; audited. None: no refusal
        stands there."""
        old = await self.store.get(KIND, enterprise, doc_id(card, carrier))
        if old is None or old.get("state") != "refused":
            return None
        doc = {**old, "state": "cleared", "cleared_by": actor, "cleared_at": time.time()}
        async with self.store.tx():
            await self.store.put(KIND, enterprise, doc_id(card, carrier), doc)
            await self.store.audit(
                actor,
                enterprise,
                f"card:{card}",
                "clear carrier refusal",
                {"carrier": carrier, "version": old.get("version"), "description": old.get("description")},
            )
        await self.store.durable()
        return doc
