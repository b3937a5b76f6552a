"""Dispatch: a call event → the right card → the channel chain, one durable step at a time.

line → enterprise → card for the phase (the line's own, its group's, the enterprise's; ad lines
rotate by weight) → data (card data, staff member, call fields) → render → chain (enterprise
policy, minus RCS when the phone cannot show it) → for each channel: charge, hand over, wait for
a receipt or the channel's timeout, refund and fall over on failure.

Durability: the delivery row is written before the 202; each attempt row is written BEFORE its
submit and its message ids right after. After a restart every `active` delivery resumes from its
last attempt: a submitted one waits for its receipt until its deadline, and one caught between
the row and the submit ("sending") is never resent on that channel (it may have gone out); it
counts as unknown and the chain goes on after its timeout. So nothing is sent twice.

A pre-call (ringing) card is dropped, never sent late, once the call is answered or ended or
the ring timeout has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from renderer import RenderError, TemplateStore
from renderer.gsm import Channel as Channel_
from renderer.legacy import LegacyText, degrade, parse_reply
from renderer.model import Brand, Message

from . import rules
from .channels import Channel, Outgoing
from .metering import Charge, Meter, day_of
from .model import DEFAULT_CHAIN, NumberError, national, normalize_number
from .smpp import ShortMessage, parse_receipt
from .store import Attempt, Delivery, DeliveryStore

log = logging.getLogger("mingpian.delivery")
LEGACY = ("ussd", "flash", "sms")
DEFAULT_TIMEOUTS = {"rcs": 60.0, "ussd": 5.0, "flash": 30.0, "sms": 120.0}
WAITING = ("submitted", "unknown")
RESUME_GRACE = 1.0  # seconds an overdue attempt still waits for its receipt after a restart
Capability = Callable[[str, str], Any]  # async (number, chatbot) -> bool


def charge_key(att: Attempt) -> str:
    """What a charge is keyed by: the delivery (call id + phase, unique across server processes)
    and the step — not the attempt's row id, which is only unique within one SQLite file."""
    return f"{att.delivery}#{att.step}"


class InProgress(Exception):
    """Another server process claimed this call event and has not confirmed it yet."""


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        meter: Meter,
        templates: TemplateStore,
        channels: dict[str, Channel],
        *,
        timeouts: dict[str, float] | None = None,
        ring_timeout: float = 45.0,
        capability: Capability | None = None,
        dedupe_ttl: float = 2 * 86400,
    ) -> None:
        self.store = store
        self.meter = meter
        self.templates = templates
        self.channels = channels
        self.timeouts = timeouts or dict(DEFAULT_TIMEOUTS)
        self.ring_timeout = ring_timeout
        self.capability = capability
        self.dedupe_ttl = dedupe_ttl
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Future[None]] = {}
        self._rendered: dict[str, Message] = {}
        self._shared: dict[tuple[Any, ...], Message] = {}
        self._legacy: dict[int, dict[str, LegacyText]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._late: dict[str, tuple[str, float]] = {}  # call id → (answered/ended, when), recent calls
        self._closing = False
        self.handed = 0  # messages handed to a gateway (for the benchmark)

    # -- lifecycle ---------------------------------------------------------------------------
    def resume(self) -> int:
        ids = self.store.active_deliveries()
        for did in ids:
            self._spawn(did)
        return len(ids)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is in progress (tests and the benchmark)."""
        end = time.monotonic() + timeout
        while self._tasks and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def _spawn(self, did: str, d: Delivery | None = None) -> None:
        if did in self._tasks or self._closing:
            return
        t = asyncio.get_running_loop().create_task(self._run(did, d), name=f"delivery:{did}")
        self._tasks[did] = t
        t.add_done_callback(lambda _t, did=did: self._done(did))

    def _done(self, did: str) -> None:
        self._tasks.pop(did, None)
        self._wake.pop(did, None)
        self._rendered.pop(did, None)

    def _poke(self, did: str) -> None:
        wake = self._wake.get(did)
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- call events -------------------------------------------------------------------------
    def resolve(self, caller: str, callee: str) -> tuple[str, dict[str, Any], str, str] | None:
        """(enterprise, line doc, line number, the person) — the enterprise's line may be the
        caller (it calls a customer) or the callee (a customer calls its hotline)."""
        for line, person in ((caller, callee), (callee, caller)):
            hit = self.store.find("line", line)
            if hit is not None:
                return hit[0], hit[1], line, person
        return None

    def choose_card(
        self, enterprise: str, line: dict[str, Any], phase: str, call_id: str
    ) -> dict[str, Any] | None:
        cards = [c for c in self.store.list("card", enterprise) if c["phase"] == phase]
        for pick in (
            (lambda c: c.get("line") == line["number"]),
            (lambda c: bool(line.get("group")) and c.get("group") == line.get("group")),
            (lambda c: not c.get("line") and not c.get("group")),
        ):
            found = [c for c in cards if pick(c)]
            if found:
                return _weighted(found, call_id) if line.get("ad") or len(found) > 1 else found[0]
        return None

    async def accept(self, event: dict[str, Any], enterprise_scope: str | None) -> tuple[int, dict[str, Any]]:
        """Record a call event and start its delivery; (status, body) for the 202/200 answer.
        Raises NumberError / LookupError for the API to turn into 4xx."""
        caller = normalize_number(event["caller"])
        callee = normalize_number(event["callee"])
        call_id, phase = event["call_id"], event["phase"]
        now = time.time()
        at = float(event.get("time") or now)
        hit = self.resolve(caller, callee)
        if hit is None or (enterprise_scope is not None and hit[0] != enterprise_scope):
            raise LookupError(
                "neither caller nor callee is a line of "
                + ("this enterprise" if enterprise_scope else "any enterprise")
            )
        enterprise, line, line_no, person = hit
        did = f"{call_id}:{phase}"
        shared = self.meter.counters.name != "sqlite"
        if shared:  # several processes: the event is claimed in Redis first (see metering.claim)
            claim = await self.meter.counters.claim(did, self.dedupe_ttl)
            if claim == "pending":
                raise InProgress(f"call {call_id} {phase} is being accepted by another server; retry")
            if claim == "done":
                return 200, {"call_id": call_id, "phase": phase, "duplicate": True, "delivery": did}
        d: Delivery | None = None
        card: dict[str, Any] | None = None
        with self.store.tx():  # the event and its delivery commit together, or neither
            first = self.store.call_event(call_id, phase, at)
            if first:
                card = self.choose_card(enterprise, line, phase, call_id)
                ent = self.store.get("enterprise", "", enterprise) or {}
                chain = list((ent.get("policy") or {}).get("chain") or DEFAULT_CHAIN)
                data = {
                    "card_data": (card or {}).get("data") or {},
                    "call_fields": (card or {}).get("call_fields") or {},
                    "staff": line.get("staff"),
                    "caller": caller,
                    "callee": callee,
                    "time": at,
                    "verified": bool(line.get("verified")),
                }
                d = Delivery(
                    did,
                    call_id,
                    phase,
                    enterprise,
                    line_no,
                    person,
                    (card or {}).get("id", ""),
                    (card or {}).get("template", ""),
                    (card or {}).get("kind", "identity"),
                    data,
                    chain,
                    0,
                    "active" if card else "skipped",
                    "" if card else f"no card for phase {phase}",
                    "",
                    at,
                    now,
                    now,
                )
                self.store.add_delivery(d)
        if not first or d is None:
            await self.store.durable()
            return 200, {"call_id": call_id, "phase": phase, "duplicate": True, "delivery": did}
        if phase != "ringing":  # the call was answered or ended: a pending pre-call card is too late
            self._note_phase(call_id, phase, now)
            self._poke(f"{call_id}:ringing")
        await self.store.durable()  # acknowledged only once it would survive a crash
        if shared:
            self.meter.counters.confirm(did, self.dedupe_ttl)
        if card:
            self._spawn(did, d)
        return 202, {
            "call_id": call_id,
            "phase": phase,
            "duplicate": False,
            "delivery": did,
            "state": d.state,
            **({"reason": d.reason} if d.reason else {}),
        }

    # -- the chain ---------------------------------------------------------------------------
    def _finish(self, d: Delivery, state: str, reason: str = "", channel: str = "") -> None:
        self.store.update_delivery(d.id, state=state, reason=reason, channel=channel or d.channel)
        d.state, d.reason = state, reason
        if state == "delivered" and d.kind == "ad":
            self.store.count_impression(d.enterprise, d.card, day_of(time.time()))

    def _timeout(self, d: Delivery, channel: str) -> float:
        ent = self.store.get("enterprise", "", d.enterprise) or {}
        t = ((ent.get("policy") or {}).get("timeouts") or {}).get(channel)
        return float(t) if t else self.timeouts.get(channel, 30.0)

    async def _run(self, did: str, d: Delivery | None) -> None:
        try:
            await self._chain(did, d)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the delivery silently active forever
            log.exception("delivery %s crashed", did)
            d = self.store.delivery(did)
            if d is not None and d.state == "active":
                self._finish(d, "failed", f"internal error: {type(exc).__name__}")

    def _late_phase(self, call_id: str, resumed: bool) -> str | None:
        """`answered`/`ended` if the call got that far (memory; the database after a restart)."""
        phase = self._late.get(call_id, (None, 0.0))[0]
        if phase is None and resumed:
            seen = self.store.call_phases(call_id) & {"answered", "ended"}
            phase = sorted(seen)[0] if seen else None
        return phase

    def _note_phase(self, call_id: str, phase: str, now: float) -> None:
        self._late[call_id] = (phase, now)
        horizon = now - self.ring_timeout - 60  # older calls cannot have a pre-call card pending
        while self._late:
            first = next(iter(self._late))
            if self._late[first][1] >= horizon:
                break
            del self._late[first]

    async def _chain(self, did: str, d: Delivery | None) -> None:
        resumed, graced = d is None, False
        if d is None:
            d = self.store.delivery(did)
            if d is not None and d.state == "active" and self.meter.counters.name != "sqlite":
                await self._give_back_orphan(d)
        while d is not None and d.state == "active":
            now = time.time()
            if d.phase == "ringing":
                late = self._late_phase(d.call_id, resumed)
                if late or now - d.event_at > self.ring_timeout:
                    why = f"call {late} before the card arrived" if late else "ring timeout passed"
                    self._finish(d, "dropped", why)
                    return
            if self.store.opted_out(d.enterprise, d.recipient):
                self._finish(d, "blocked", "opted out")
                return
            att = self.store.attempt(d.id, d.step)
            if att is None:
                if d.step >= len(d.chain):
                    self._finish(d, "failed", "every channel failed")
                    return
                if d.step == 0 and not await self._rules_pass(d, now):
                    return
                await self._attempt(d, d.chain[d.step])
            elif att.state == "sending":  # crashed between the row and the submit's answer
                self.store.update_attempt(
                    att.id, state="unknown", detail="interrupted while handing over; not resent"
                )
            elif att.state in WAITING:
                if resumed and now >= att.deadline and not graced:
                    # Down past the deadline: the receipts the SMSC kept for us arrive right after
                    # the bind, so give them a moment before falling over.
                    graced = True
                    att.deadline = now + RESUME_GRACE
                if now >= att.deadline:
                    self.store.update_attempt(
                        att.id,
                        state="timeout",
                        done=now,
                        detail=f"no receipt within {att.deadline - att.started:.1f}s",
                    )
                    await self.meter.refund(charge_key(att))
                    d.step += 1
                    self.store.update_delivery(d.id, step=d.step)
                else:
                    loop = asyncio.get_running_loop()
                    wake: asyncio.Future[None] = loop.create_future()
                    self._wake[d.id] = wake
                    # a receipt may have come before the ids were stored
                    if self._evaluate(att.id) in WAITING:
                        timer = loop.call_later(
                            max(0.0, att.deadline - time.time()),
                            lambda w=wake: w.done() or w.set_result(None),
                        )
                        await wake
                        timer.cancel()
            elif att.state == "delivered":
                self._finish(d, "delivered", "", att.channel)
                return
            elif att.state == "refused":
                return
            else:  # failed / timeout / error / skipped: next channel
                d.step += 1
                self.store.update_delivery(d.id, step=d.step)

    async def _give_back_orphan(self, d: Delivery) -> None:
        """Redis units are taken just before the attempt row commits (see `_attempt`): a crash
        in between leaves a charge without a row, at the first step that has none. The chain may
        never get there again (the call ended, an opt-out), so give it back; an attempt that
        does run takes it anew."""
        step = d.step
        while self.store.attempt(d.id, step) is not None:
            step += 1
        await self.meter.counters.refund(f"{d.id}#{step}")

    async def _rules_pass(self, d: Delivery, now: float) -> bool:
        ent = self.store.get("enterprise", "", d.enterprise) or {}
        policy = ent.get("policy") or {}
        if d.kind == "ad" and rules.in_quiet_hours(policy, now):
            self._finish(d, "blocked", "quiet hours for advertising cards")
            return False
        cap = rules.cap_of(policy, d.phase)
        if cap is not None and not await self.meter.counters.cap(
            f"{d.enterprise}|{d.recipient}|{d.phase}", cap[0], cap[1], d.id, now
        ):
            self._finish(d, "blocked", f"frequency cap: {cap[0]} per {cap[1]:g}s")
            return False
        return True

    def _message(self, d: Delivery) -> Message:
        msg = self._rendered.get(d.id)
        if msg is not None:
            return msg
        template = self.templates.get(d.template)
        # Every call on a line shows the same card unless it uses call fields: render it once per
        # (template version, card, line, staff member, verification, configuration generation).
        shared = None
        if not d.data.get("call_fields"):
            shared = (
                id(template),
                template.version,
                d.enterprise,
                d.card,
                d.line,
                d.data.get("staff"),
                bool(d.data.get("verified")),
                self.store.generation,
            )
            hit = self._shared.get(shared)
            if hit is not None:
                self._rendered[d.id] = hit
                return hit
        data = _deep_merge({}, d.data["card_data"])
        staff_id = d.data.get("staff")
        if staff_id:  # the line's staff member: only what this template's data has room for
            staff = self.store.get("staff", d.enterprise, staff_id)
            props = template.schema.get("properties") or {}
            open_ = template.schema.get("additionalProperties", True) is not False
            if staff:
                data = _deep_merge(
                    data, {k: v for k, v in (staff.get("data") or {}).items() if open_ or k in props}
                )
        fields = {
            "caller": d.data["caller"],
            "callee": d.data["callee"],
            "line": national(d.line),
            "recipient": national(d.recipient),
            "time": d.data["time"],
        }
        for name, src in d.data.get("call_fields", {}).items():
            data[name] = (
                fields[src]
                if src != "time"
                else time.strftime("%Y-%m-%d %H:%M", time.gmtime(fields["time"] + 8 * 3600))
            )
            if src in ("caller", "callee"):
                data[name] = national(data[name])
        msg = template.render(data)
        ent = self.store.get("enterprise", "", d.enterprise) or {}
        if d.data.get("verified"):  # a verified number speaks with the enterprise's brand
            msg.brand = Brand(
                ent.get("signature") or msg.brand.signature,
                ent.get("brand_name") or ent.get("name") or msg.brand.name,
                ent.get("color") or msg.brand.color,
                msg.brand.logo,
            )
        else:  # unverified: the bare number, never a brand the operator has not checked
            num = national(d.line)
            msg.brand = replace(msg.brand, signature=num, name=num)
        self._rendered[d.id] = msg
        if shared is not None:
            if len(self._shared) >= 4096:
                self._shared.clear()
                self._legacy.clear()
            self._shared[shared] = msg
            self._legacy[id(msg)] = {}
        return msg

    def _degrade(self, msg: Message, channel: Channel_) -> LegacyText:
        """Degrade once per shared message and channel (a shared message stays alive in
        `_shared`, so its id is not reused while its entry exists)."""
        texts = self._legacy.get(id(msg))
        if texts is None:
            return degrade(msg, channel)
        if channel not in texts:
            texts[channel] = degrade(msg, channel)
        return texts[channel]

    async def _attempt(self, d: Delivery, channel: str) -> None:
        impl = self.channels.get(channel)
        now = time.time()
        reason = ""
        if impl is None:
            reason = f"channel {channel} not configured"
        elif channel == "rcs":
            chatbot = (self.store.get("enterprise", "", d.enterprise) or {}).get("chatbot", "")
            if not chatbot:
                reason = "the enterprise has no chatbot for 5G messages"
            elif self.capability is not None and not await self.capability(d.recipient, chatbot):
                reason = "the phone cannot show 5G messages"
        if reason:
            att = self.store.add_attempt(d.id, d.step, channel, 0, 0, now)
            self.store.update_attempt(att.id, state="skipped", done=now, detail=reason)
            return
        try:
            msg = self._message(d)
            legacy = self._degrade(msg, channel if channel in LEGACY else "sms")  # rcs: SMS fallback
        except RenderError as exc:
            self._finish(d, "failed", f"render: {exc}")
            return
        segments = len(legacy.segments) if channel in LEGACY else 1
        ent = self.store.get("enterprise", "", d.enterprise) or {}
        # The attempt row and its charge commit together before the submit. SQLite counters never
        # suspend inside `charge`, so it runs within this one transaction. Redis ones take the
        # units first, keyed by delivery and step (what `charge_key` of this attempt will be), so
        # the attempt row, its units and the ledger row then commit together and one durable
        # wait covers them; a charge whose row a crash lost is given back on resume (`_chain`).
        inline = self.meter.counters.name == "sqlite"
        charge = None
        if not inline:
            charge = await self.meter.charge(
                f"{d.id}#{d.step}", d.enterprise, d.line, channel, segments, now, record=False
            )
        with self.store.tx():
            att = self.store.add_attempt(d.id, d.step, channel, segments, 0, now + self._timeout(d, channel))
            if charge is None:
                charge = await self.meter.charge(
                    charge_key(att), d.enterprise, d.line, channel, segments, now
                )
            else:
                self.meter.record(charge_key(att), charge, d.enterprise, d.line, channel, now)
            self._charged(att.id, charge, now)
        await self.store.durable()  # the attempt row and its charge exist before anything is sent
        if not charge.ok:
            self._finish(d, "blocked", f"quota: {charge.reason}")
            return
        handed = await impl.send(
            Outgoing(
                d.id,
                channel,
                d.line,
                d.recipient,
                msg,
                legacy,  # type: ignore[union-attr]
                ent.get("chatbot", ""),
                {"step": d.step},
            )
        )
        self.handed += 1
        with self.store.tx():
            self.store.add_message_ids(att.id, list(handed.message_ids))
            if handed.ok and channel == "rcs":  # the MaaP owns the rest, SMS fallback included
                self.store.update_attempt(att.id, state="delivered", done=time.time(), detail=handed.detail)
                self._poke(d.id)
            elif handed.ok:
                self.store.update_attempt(att.id, state="submitted", detail=",".join(handed.message_ids))
            else:
                self.store.update_attempt(att.id, state="error", done=time.time(), detail=handed.detail)
        if not handed.ok:
            await self.meter.refund(charge_key(att))
        self._evaluate(att.id)

    def _charged(self, attempt: int, charge: Charge, now: float) -> None:
        if charge.ok:
            self.store.update_attempt(attempt, units=charge.units + charge.overage)
        else:
            self.store.update_attempt(attempt, state="refused", done=now, detail=charge.reason)

    # -- receipts and replies ------------------------------------------------------------------
    def _evaluate(self, attempt_id: int) -> str:
        """Apply the receipts an attempt has; its state afterwards."""
        att = self.store.attempt_by_id(attempt_id)
        if att is None or att.state not in WAITING:
            return att.state if att is not None else "gone"
        total, stats = self.store.receipts_of(attempt_id)
        if total == 0:
            return att.state
        failed = [s for s in stats if s != "DELIVRD"]
        now = time.time()
        if failed:
            state = "failed"
            self.store.update_attempt(attempt_id, state=state, done=now, detail=f"receipt {failed[0]}")
            t = asyncio.get_running_loop().create_task(self.meter.refund(charge_key(att)))
            self._background.add(t)
            t.add_done_callback(self._background.discard)
        elif len(stats) == total:
            state = "delivered"
            self.store.update_attempt(attempt_id, state=state, done=now, detail="receipt DELIVRD")
        else:
            return att.state
        self._poke(att.delivery)
        return state

    def on_receipt(self, message_id: str, stat: str, forwarded: bool = False) -> None:
        """Store a receipt and apply it. One for a message this process did not submit (the SMSC
        sent it to another process's session) is forwarded through Redis to all of them."""
        with self.store.tx():
            self.store.receipt(message_id, stat)
            attempt = self.store.attempt_of_message(message_id)
            if attempt is not None:
                self._evaluate(attempt)
        forward = getattr(self.meter.counters, "forward_receipt", None)
        if attempt is None and not forwarded and forward is not None:
            t = asyncio.get_running_loop().create_task(forward(message_id, stat))
            self._background.add(t)
            t.add_done_callback(self._background.discard)

    def on_reply(
        self, sender: str, line: str, text: str, channel: str, postback: str = "", ref: str = ""
    ) -> bool:
        """A person's reply to one of an enterprise's lines, on any channel; True if it was an
        opt-out (stored before returning). See `_reply`."""
        try:
            number = normalize_number(line)
        except NumberError:
            return False
        hit = self.store.find("line", number)
        if hit is None:
            return False
        return self._reply([hit[0]], sender, text, channel, postback, ref)

    def on_chatbot(self, chatbot: str, user: str, text: str, postback: str = "", ref: str = "") -> bool:
        """A user's text or tap that reached a 5G chatbot (in-process, from the chatbot's webhook):
        it speaks for every enterprise whose `chatbot` is that address. True if an opt-out."""
        bot = _bot_id(chatbot)
        ents = [e["id"] for e in self.store.list("enterprise", "") if _bot_id(e.get("chatbot", "")) == bot]
        return bool(bot and ents) and self._reply(ents, user, text, "rcs", postback, ref)

    def _reply(
        self, enterprises: list[str], sender: str, text: str, channel: str, postback: str, ref: str
    ) -> bool:
        """An opt-out word blocks each of these enterprises for the sender on every channel. A
        menu choice ("1", "回复2") or a 5G button's postback answering the card this person got
        from them in the last day counts as a tap on that button (and, for an advertising card,
        on the card); with `ref` (the platform's message id) a redelivered reply counts once."""
        opt_out = not postback and rules.is_opt_out(text)
        key = None if opt_out or postback else parse_reply(text)
        if not opt_out and not postback and (key is None or not key.isdigit()):
            return False
        try:
            who = normalize_number(sender.removeprefix("tel:"))
        except NumberError:
            return False
        if opt_out:
            for ent in enterprises:
                self.store.opt_out(ent, who, channel, text)
                for did in self.store.active_for(ent, who):  # chains in flight stop now, not later
                    self._poke(did)
            return True
        self._tap(enterprises, who, key, postback, ref)
        return False

    def _tap(self, enterprises: list[str], who: str, key: str | None, postback: str, ref: str) -> None:
        now = time.time()
        last = self.store.last_delivered(enterprises, who, None)
        if last is None or now - last[1] > 86400:
            return
        enterprise = last[3]
        d = self.store.delivery(last[2])
        if d is None:
            return
        try:
            buttons = self._message(d).all_suggestions
        except RenderError:
            return
        finally:
            self._rendered.pop(d.id, None)  # its chain is over: nothing else will drop the entry
        index = (
            int(key) - 1 if key else next((i for i, b in enumerate(buttons) if b.postback == postback), -1)
        )
        if not 0 <= index < len(buttons):
            return
        if ref and not self.store.first_reply(ref, now):
            return
        day = day_of(now)
        self.store.count_tap(enterprise, d.card, buttons[index].text, day)
        if d.kind == "ad":
            self.store.count_impression(enterprise, d.card, day, taps=1)

    async def on_deliver(self, sm: ShortMessage) -> None:
        """deliver_sm from the SMSC: a receipt, or a mobile-originated reply."""
        r = parse_receipt(sm)
        if r is not None:
            if r.final:
                self.on_receipt(r.message_id, r.stat)
        else:
            self.on_reply(sm.source, sm.destination, sm.text(), "sms")
        await self.store.durable()  # the deliver_sm_resp goes out after this


def _bot_id(address: str) -> str:
    """A chatbot address compared loosely: `sip:106500@botplatform…`, `106500@…` and `106500`
    (the chatbotId some platforms put in the webhook path) name the same chatbot."""
    return address.strip().removeprefix("sip:").partition("@")[0]


def _weighted(cards: list[dict[str, Any]], call_id: str) -> dict[str, Any]:
    """A card by weight, stable per call id (a retried event picks the same card)."""
    total = sum(int(c.get("weight", 1)) for c in cards)
    if total <= 0:
        return cards[0]
    x = zlib.crc32(call_id.encode()) % total
    for c in cards:
        x -= int(c.get("weight", 1))
        if x < 0:
            return c
    return cards[-1]


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
