"""A person's answer to a card: an opt-out word, a numbered menu choice, or a 5G button's tap.

An opt-out blocks the enterprise(s) for that person on every channel at once, and chains in
flight for them stop. A menu choice ("1", "回复2") or a button's postback answering the card
this person got from them in the last day counts as a tap on that button (and, for an
advertising card, on the card); with the platform's message id a redelivered reply counts once.
Replies come from the SMSC (mobile-originated SMS), Kannel, the API, or the chatbot webhook;
taps on the H5 card page of a delivery are counted here too (`count`).

Each also joins the event stream (events.py), written before the reply is answered: a tap inside
its counting block (with its dedupe key: a tap counted is a tap in the stream), an opt-out and a
5G text ("replied") on the card the person got last, read once for the event and the tap alike.
"""

from __future__ import annotations

import time

from renderer import RenderError
from renderer.model import Suggestion
from renderer.replies import parse_reply

from . import rules
from .compose import Composer
from .events import Events
from .metering import day_of
from .model import NumberError, normalize_number
from .records import Delivery
from .rows.reach import LastDelivered
from .storage import DeliveryStore
from .wakeups import Wakeups

TAP_WINDOW = 86400.0  # seconds after a card during which a reply counts as a tap on it


class Replies:
    def __init__(self, store: DeliveryStore, composer: Composer, wakeups: Wakeups) -> None:
        self.store = store
        self.composer = composer
        self.wakeups = wakeups
        self.events: Events | None = None  # the event stream (events.py): taps, replies, opt-outs

    async def on_reply(
        self, sender: str, line: str, text: str, channel: str, postback: str = "", ref: str = ""
    ) -> bool:
        """A reply to one of an enterprise's lines, on any channel; True if it was an opt-out
        (stored before returning)."""
        try:
            number = normalize_number(line)
        except NumberError:
            return False
        hit = await self.store.find("line", number)
        if hit is None:
            return False
        return await self._reply([hit[0]], sender, text, channel, postback, ref)

    async def on_chatbot(self, chatbot: str, user: str, text: str, postback: str = "", ref: str = "") -> bool:
        """A user's text or tap that reached a 5G chatbot: it speaks for every enterprise whose
        `chatbot` is that address. True if an opt-out."""
        bot = bot_id(chatbot)
        ents = [
            e["id"] for e in await self.store.list("enterprise", "") if bot_id(e.get("chatbot", "")) == bot
        ]
        return bool(bot and ents) and await self._reply(ents, user, text, "rcs", postback, ref)

    async def _reply(
        self, enterprises: list[str], sender: str, text: str, channel: str, postback: str, ref: str
    ) -> bool:
        opt_out = not postback and rules.is_opt_out(text)
        key = None if opt_out or postback else parse_reply(text)
        try:
            who = normalize_number(sender.removeprefix("tel:"))
        except NumberError:
            return False
        tap = not opt_out and (bool(postback) or (key is not None and key.isdigit()))
        event = self.events is not None and (opt_out or (channel == "rcs" and not postback))
        last = await self._last(enterprises, who) if tap or event else None  # one read for both
        if event and last is not None and self.events is not None:
            # no write of its own to join (an opt-out's come next): the caller's durable() covers it
            kind = "opted_out" if opt_out else "replied"
            await self.events.record(kind, last[2], last[4], channel, time.time())
        if not opt_out and not tap:
            return False
        if opt_out:
            for ent in enterprises:
                await self.store.opt_out(ent, who, channel, text)
                for did in await self.store.active_for(ent, who):  # chains in flight stop now, not later
                    self.wakeups.announce(did)
            return True
        if last is not None:
            await self._tap(last, key, postback, ref)
        return False

    async def _last(self, enterprises: list[str], who: str) -> LastDelivered | None:
        """The card the person got last from these enterprises, if within the tap window."""
        last = await self.store.last_delivered(enterprises, who, None)
        return None if last is None or time.time() - last[1] > TAP_WINDOW else last

    async def _tap(self, last: LastDelivered, key: str | None, postback: str, ref: str) -> None:
        now = time.time()
        enterprise = last[3]
        d = await self.store.delivery(last[2])
        if d is None:
            return
        try:
            ent = await self.store.get("enterprise", "", d.enterprise) or {}
            buttons = (await self.composer.message(d, ent)).all_suggestions
        except RenderError:
            return
        finally:
            self.composer.forget(d.id)  # its chain is over: nothing else will drop the entry
        index = (
            int(key) - 1 if key else next((i for i, b in enumerate(buttons) if b.postback == postback), -1)
        )
        if not 0 <= index < len(buttons):
            return
        await self.count(d, buttons[index], "rcs" if postback else "sms", ref, enterprise, now)

    async def count(
        self,
        d: Delivery,
        button: Suggestion,
        channel: str,
        ref: str = "",
        enterprise: str = "",
        now: float | None = None,
    ) -> bool:
        """Count a tap on `button` of delivery `d`'s card (and, for an advertising card, on the
        card): what a numbered SMS reply, a 5G postback and a tap on the H5 card page
        (`channel` "h5") all come to. With `ref` a repeat counts once; True when counted."""
        now = time.time() if now is None else now
        day = day_of(now)
        # the first reply is remembered only with its tap counted, and its event with both
        async with self.store.tx():
            if ref and not await self.store.first_reply(ref, now):
                return False
            await self.store.count_tap(enterprise or d.enterprise, d.card, button.text, day)
            if d.kind == "ad":
                await self.store.count_impression(enterprise or d.enterprise, d.card, day, taps=1)
            if self.events is not None:  # once per button of a delivery's step, whatever the channel
                await self.events.record(
                    "tapped", d.id, d.step, channel, now, key=button.text, button=button.text
                )
        return True


def bot_id(address: str) -> str:
    """A chatbot address compared loosely: `sip:106500@botplatform…`, `106500@…` and `106500`
    (the chatbotId some platforms put in the webhook path) name the same chatbot."""
    return address.strip().removeprefix("sip:").partition("@")[0]
