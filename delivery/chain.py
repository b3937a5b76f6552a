"""The channel chain of one delivery, one durable step at a time.

For each channel of the chain (enterprise policy, minus RCS when the phone cannot show it):
charge, hand the card to the gateway, wait for a receipt or the channel's timeout, refund and
fall over on failure.

Durability: each attempt row is written BEFORE its submit and its message ids right after.
After a restart every `active` delivery resumes from its last attempt: a submitted one waits
for its receipt until its deadline, and one caught between the row and the submit ("sending")
is never resent on that channel (it may have gone out); it counts as unknown, takes the receipts
about its recipient that match no message id (its own, whose ids the crash kept from being
recorded), and the chain goes on after its timeout only if none says it was delivered. So a card
is sent twice only when a submit was in flight at a crash, the SMSC kept no receipt for it and
the next channel then shows it again (docs/delivery.md, "What a kill -9 can cause"). A chain
that resumes past its deadline waits for its gateway (the SMSC bind) and then a short grace
before falling over: the receipts the SMSC kept for us come right after the bind.

An outage of PostgreSQL or Redis does not fail a chain: it waits until the backend answers again
(one probe per backend for every chain of the process) and goes on from what the store holds,
with the writes of the outage committed first. A receipt deadline does not run while the store
is away: a receipt that could not be stored or read then would otherwise look lost, and the
chain fall over to a second card after a delivery that succeeded.

A pre-call (ringing) card is dropped, never sent late, once the call is answered or ended or
the ring timeout has passed; one the MaaP already accepted is revoked then (revoke.py).

Why one module of this length: the durable steps of a chain (charge, submit, wait, refund, fall
over, resume after a restart) are one state machine; its invariants are stated above and
kept in one file so every step can be checked against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from infra.outage import log_failure, outages, unavailable
from renderer import RenderError
from renderer.legacy import LegacyText

from . import rules
from .brand import source_of
from .compose import Composer
from .events import Events
from .gateways import Channel, Outgoing
from .metering import Charge, Meter, day_of
from .receipts import WAITING, Receipts, charge_key
from .records import Attempt, Delivery
from .revoke import Revoker
from .shortlinks import ShortLinks, policy_of
from .storage import DeliveryStore
from .wakeups import Wakeups

log = logging.getLogger("mingpian.delivery")
LEGACY = ("ussd", "flash", "sms")
# cardsms: how long its render receipt is waited for (the render window; docs/delivery.md)
DEFAULT_TIMEOUTS = {"rcs": 60.0, "ussd": 5.0, "flash": 30.0, "sms": 120.0, "cardsms": 120.0}
RESUME_GRACE = 1.0  # seconds an overdue attempt still waits for its receipt after a restart
RESUME_BIND_WAIT = 30.0  # at most this long for the attempt's gateway (SMSC bind) before the grace
PROBE_FIRST, PROBE_CAP = 0.2, 2.0  # seconds between probes of a backend that is away
Capability = Callable[[str, str], Awaitable[bool]]  # (number, chatbot) -> can it show 5G messages
# (enterprise, card, version, chatbot) -> why its carrier refused that card ("" : it did not)
Refused = Callable[[str, str, int, str], Awaitable[str]]
Skip = Callable[[Delivery, dict[str, Any]], Awaitable[str]]  # a channel's own reason to skip ("" : none)


class LeaseLost(Exception):
    """Another worker holds this chain now: this one must not hand anything over."""


class Chains:
    """Runs every active delivery's chain as a task of its own."""

    def __init__(
        self,
        store: DeliveryStore,
        meter: Meter,
        composer: Composer,
        receipts: Receipts,
        wakeups: Wakeups,
        channels: dict[str, Channel],
        *,
        timeouts: dict[str, float] | None = None,
        ring_timeout: float = 45.0,
        capability: Capability | None = None,
        lease: float = 15.0,
        revoker: Revoker | None = None,
        platform_sender: str = "",
        refused: Refused | None = None,
        links: ShortLinks | None = None,
        skips: dict[str, Skip] | None = None,
    ) -> None:
        self.store = store
        self.meter = meter
        self.composer = composer
        self.receipts = receipts
        self.wakeups = wakeups
        self.channels = channels
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.ring_timeout = ring_timeout
        self.capability = capability
        self.refused = refused  # a card its carrier refused after the fact (refusals.py)
        self.links = links  # short links in texts: minted with the attempt (shortlinks.py)
        self.skips = skips if skips is not None else {}  # per channel, e.g. cardsms.py's check
        self.events: Events | None = None  # the event stream (events.py): sent
        self.carrier: Callable[[str], str] | None = None  # a chatbot's carrier: a 5G fact's vendor
        self.revoker = revoker
        self.platform_sender = platform_sender  # what an unverified line's texts go out from
        self._background: set[asyncio.Task[None]] = set()
        self.lease = lease  # seconds a worker holds a chain without renewing it
        wakeups.local = lambda did: did in self._tasks
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._keeper: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, float] = {}  # delivery → until when the store says this worker holds it
        # Deliveries whose chain here wrote their final state (their row left `active_chains`
        # with it) and whose task has not ended yet: not held any more, and not lost either.
        self._ending: set[str] = set()
        self._late: dict[str, tuple[str, float]] = {}  # call id → (answered/ended, when), recent calls
        self._closing = False
        self._probes: dict[str, asyncio.Task[None]] = {}  # backend → the probe every chain awaits
        self.handed = 0  # messages handed to a gateway (for the benchmark)
        self.taken_over = 0  # chains started here from the store: resumed at start, or another worker's

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> int:
        """Take over the active chains no worker holds (after a restart: this worker's own), then
        keep the leases: renew ours, take over those whose worker died."""
        n = await self._claim(startup=True)
        self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="delivery-leases")
        return n

    async def _claim(self, startup: bool = False) -> int:
        now = time.time()
        ids = await self.store.claim_chains(self.owner, now, now + self.lease, 500)
        for did in ids:
            self._held[did] = now + self.lease
            # A store without shared leases (SQLite: one process) hands back every active chain,
            # among them one just accepted here and not yet spawned: only start-up resumes count.
            if did not in self._tasks and not self._closing and (startup or self.store.shared):
                self.taken_over += 1
            self.spawn(did)
        return len(ids)

    def stats(self) -> dict[str, int]:
        """For monitoring (read only): chains running in this process, and how many it has taken
        over from the store since it started."""
        return {"active_chains": len(self._tasks), "taken_over": self.taken_over}

    async def _keep(self) -> None:
        """Every third of a lease: renew what runs here (a chain whose lease another worker took
        over stops here), and take over chains whose lease ran out."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                mine = list(self._tasks)
                until = time.time() + self.lease
                held = await self.store.renew(self.owner, mine, until)
                for did in held & self._tasks.keys():
                    self._held[did] = until
                for did in set(mine) - held:
                    # Not renewed: taken over, or finished here (its row went with its final
                    # state, committed while the renewal waited) by a chain still ending or gone.
                    task = self._tasks.get(did)
                    if task is None or task.done() or did in self._ending:
                        continue
                    log.warning("delivery %s: lease lost to another worker; stopping here", did)
                    task.cancel()
                await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is briefly away: try again next round
                log_failure(log, exc, "delivery leases: renewing or claiming failed")

    async def close(self) -> None:
        """Stop every chain here and let go of their leases, so another worker resumes them now
        rather than after the lease runs out."""
        self._closing = True
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        owned = list(self._tasks)
        tasks = [*self._tasks.values(), *self._background, *self._probes.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.store.release(self.owner, owned)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is in progress (tests and the benchmark)."""
        end = time.monotonic() + timeout
        while self._tasks and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def spawn(self, did: str, d: Delivery | None = None, held_until: float = 0.0) -> None:
        """Run `did`'s chain here; `held_until`: the lease this worker just wrote for it."""
        if self._closing:
            return
        if held_until:
            self._held[did] = max(held_until, self._held.get(did, 0.0))
        if did in self._tasks:
            return
        # a fresh context: the chain never inherits a store transaction of the task that spawned it
        t = asyncio.get_running_loop().create_task(
            self._run(did, d), name=f"delivery:{did}", context=contextvars.Context()
        )
        self._tasks[did] = t
        t.add_done_callback(lambda _t, did=did: self._done(did))

    def _done(self, did: str) -> None:
        self._tasks.pop(did, None)
        self._held.pop(did, None)
        self._ending.discard(did)
        self.wakeups.forget(did)
        self.composer.forget(did)

    def note_phase(self, call_id: str, phase: str, now: float) -> None:
        """The call was answered or ended: its pending pre-call card is now too late."""
        self._late[call_id] = (phase, now)
        horizon = now - self.ring_timeout - 60  # older calls cannot have a pre-call card pending
        while self._late:
            first = next(iter(self._late))
            if self._late[first][1] >= horizon:
                break
            del self._late[first]
        self.wakeups.announce(f"{call_id}:ringing")
        if self.revoker is not None:  # a pre-call 5G card already accepted: take it back
            t = asyncio.get_running_loop().create_task(
                self._revoke_late(call_id), context=contextvars.Context()
            )
            self._background.add(t)
            t.add_done_callback(self._background.discard)

    async def _revoke_late(self, call_id: str) -> None:
        assert self.revoker is not None
        try:
            await self.revoker.call_moved_on(call_id)
        except Exception as exc:  # the MaaP or the database is away: the card stays; logged
            log_failure(log, exc, "call %s: revoking its pre-call 5G card failed", call_id)

    async def _late_phase(self, call_id: str) -> str | None:
        """`answered`/`ended` if the call got that far: heard here, or stored by any worker."""
        phase = self._late.get(call_id, (None, 0.0))[0]
        if phase is None:
            seen = await self.store.call_phases(call_id) & {"answered", "ended"}
            phase = sorted(seen)[0] if seen else None
        return phase

    # -- the chain ---------------------------------------------------------------------------
    async def _run(self, did: str, d: Delivery | None) -> None:
        while True:
            try:
                await self._chain(did, d)
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                log.warning(
                    "delivery %s: lease lost to another worker before the hand-over; not sent here", did
                )
                return
            except Exception as exc:
                outage = unavailable(exc)
                if outage is None:  # a bug must not leave the delivery silently active forever
                    log.exception("delivery %s crashed", did)
                    d = await self.store.delivery(did)
                    if d is not None and d.state == "active":
                        await self._finish(d, "failed", f"internal error: {type(exc).__name__}")
                    return
            # The store or the counters are away: once back, go on from what the store holds
            # (the writes this worker made meanwhile are committed before anything is read).
            await self.back(outage.backend)
            d = None

    def back(self, backend: str) -> asyncio.Future[None]:
        """Resolves once `backend` answers again. One probe per backend, however many chains wait."""
        probe = self._probes.get(backend)
        if probe is None or probe.done():
            probe = asyncio.get_running_loop().create_task(
                self._probe(backend), name=f"delivery-probe-{backend}", context=contextvars.Context()
            )
            self._probes[backend] = probe
        return asyncio.shield(probe)

    async def _probe(self, backend: str) -> None:
        delay = PROBE_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                await (self.store.ping() if backend == "database" else self.meter.counters.ping())
            except Exception as exc:
                if unavailable(exc) is None:
                    log.exception("delivery: probing %s failed", backend)
                delay = min(delay * 2, PROBE_CAP)
                continue
            outages.up(backend)
            return

    async def _settled(self, did: str) -> None:
        """The attempt row and its charge durable, and the lease held, before the hand-over. A
        store that is away is waited for (nothing was sent: the hand-over follows)."""
        while True:
            try:
                await self.store.durable()
                await self._fence(did)
                return
            except LeaseLost:
                raise
            except Exception as exc:
                outage = unavailable(exc)
                if outage is None:
                    raise
            await self.back(outage.backend)

    async def _finish(self, d: Delivery, state: str, reason: str = "", channel: str = "") -> None:
        if d.id in self._tasks:
            self._ending.add(d.id)  # the lease keeper no longer finds it held: not a lost lease
        await self.store.update_delivery(
            d.id, day=d.day, state=state, reason=reason, channel=channel or d.channel
        )
        d.state, d.reason = state, reason
        if state in ("delivered", "displayed") and d.kind == "ad":
            await self.store.count_impression(d.enterprise, d.card, day_of(time.time()))

    async def _chain(self, did: str, d: Delivery | None) -> None:
        resumed, graced, checked = d is None, False, False
        if d is None:
            d = await self.store.delivery(did)
            if d is not None and d.state == "active":
                await self._give_back_orphan(d)
        # The current step's attempt as last read or written here; None: read it. A delivery
        # just accepted here has none yet, so its first step needs no read.
        att: Attempt | None = None
        known = not resumed and d is not None and d.step == 0
        while d is not None and d.state == "active":
            now = time.time()
            if not known:
                att = await self.store.attempt(d.id, d.step, d.day)
            known = False
            if att is None:
                if d.phase == "ringing":  # a pre-call card is never sent late
                    late = await self._late_phase(d.call_id)
                    if late or now - d.event_at > self.ring_timeout:
                        why = f"call {late} before the card arrived" if late else "ring timeout passed"
                        await self._finish(d, "dropped", why)
                        return
                if await self.store.opted_out(d.enterprise, d.recipient):
                    await self._finish(d, "blocked", "opted out")
                    return
                if d.step >= len(d.chain):
                    await self._finish(d, "failed", "every channel failed")
                    return
                ent = await self.store.get("enterprise", "", d.enterprise) or {}
                if d.step == 0 and not await self._rules_pass(d, ent, now):
                    return
                att, known = await self._attempt(d, ent, d.chain[d.step]), True
                if att is None:
                    return  # finished: render error or quota
            elif att.state == "sending":  # crashed between the row and the submit's answer
                # Never resent on this channel (it may have gone out). Its receipt, if the SMSC
                # sends one, names a message id nobody recorded: matched by the recipient instead.
                await self._adopt(d, att)
                await self.store.update_attempt(
                    att.id, day=att.day, state="unknown", detail="interrupted while handing over; not resent"
                )
            elif att.state in WAITING:
                if await self.store.opted_out(d.enterprise, d.recipient):
                    await self._finish(d, "blocked", "opted out")
                    return
                if resumed and now >= att.deadline and not graced:
                    # Down past the deadline: the receipts the SMSC kept for us arrive right after
                    # the bind, so give them a moment from then (a slow bind is not their loss).
                    graced = True
                    gateway = self.channels.get(att.channel)
                    if gateway is not None:
                        await gateway.ready(RESUME_BIND_WAIT)
                    now = time.time()
                    att.deadline = now + RESUME_GRACE
                due = att.deadline + self._paused(att.started, now, att.channel)
                if now >= due:
                    if att.state == "unknown":
                        await self._adopt(d, att)
                    if await self.receipts.evaluate(att.id, day=att.day) not in WAITING:
                        continue  # a receipt came in time after all (stored before its ids were)
                    if att.channel == "cardsms" and await self.receipts.unrendered(att):
                        continue  # reached the phone as text, never drawn: delivered, refunded
                    await self.receipts.settle(
                        att.id,
                        att.channel,
                        "timeout",
                        day=att.day,
                        done=now,
                        detail=f"no receipt within {att.deadline - att.started:.1f}s",
                    )
                    await self.meter.refund(charge_key(att), att.started)
                    d.step += 1
                    await self.store.update_delivery(d.id, day=d.day, step=d.step)
                    known = True  # the next step has no attempt yet
                    att = None
                elif resumed and not checked:
                    checked = True  # receipts the store kept while no worker ran this chain
                    if await self.receipts.evaluate(att.id, day=att.day) in WAITING:
                        known = await self._wait(d, att, due)
                else:
                    known = await self._wait(d, att, due)
            elif att.state in ("delivered", "displayed"):  # displayed: a card SMS drawn
                # (its "delivered" event was written with the attempt's state: receipts.settle)
                await self._finish(d, att.state, "", att.channel)
                return
            elif att.state == "refused":
                return
            else:  # failed / timeout / error / skipped: next channel
                d.step += 1
                await self.store.update_delivery(d.id, day=d.day, step=d.step)
                known, att = True, None

    async def _adopt(self, d: Delivery, att: Attempt) -> None:
        """Receipts about this recipient since the attempt started that match no message id
        become this attempt's: a crash between the SMSC's answer and the recording of the
        message ids must not make a delivered card look lost (and be sent again elsewhere)."""
        if att.channel in LEGACY:
            await self.store.adopt_receipts(att.id, d.recipient, att.started, max(1, att.segments), att.day)

    def _paused(self, since: float, now: float, channel: str) -> float:
        """Seconds the deadline clock of an attempt started at `since` stood still: the longest of
        the store's and the counters' outages since (receipts are stored in one and forwarded
        between workers through the other) and of the time the channel's gateway had no session
        bound (an SMSC holds the receipts for a session it lost until one binds; at most
        RESUME_BIND_WAIT of it, so a gateway down for good still lets chains fall over)."""
        gateway = getattr(self.channels.get(channel), "unbound", None)
        unbound = min(gateway(since, now), RESUME_BIND_WAIT) if gateway is not None else 0.0
        return max(outages.downtime("database", since, now), outages.downtime("redis", since, now), unbound)

    async def _wait(self, d: Delivery, att: Attempt, due: float) -> bool:
        """Wait for `att`'s receipt (or `due`, its deadline, or another wake). True when a receipt
        heard here already settled it (the chain's copy is current), False when the store must tell."""
        self.receipts.watch(att)
        try:
            await self.wakeups.wait(d.id, due)
        finally:
            self.receipts.unwatch(att)
        return att.state not in WAITING

    async def _give_back_orphan(self, d: Delivery) -> None:
        """Units taken just before an attempt row commits (where the counters live outside the
        store) are left without a row by a crash in between, at the first step that has none.
        The chain may never get there again (the call ended, an opt-out), so give them back;
        an attempt that does run takes them anew."""
        step = d.step
        while await self.store.attempt(d.id, step, d.day) is not None:
            step += 1
        await self.meter.counters.give_back_orphan(f"{d.id}#{step}")

    async def _rules_pass(self, d: Delivery, ent: dict[str, Any], now: float) -> bool:
        policy = ent.get("policy") or {}
        quiet = rules.quiet_reason(d.kind, d.data.get("class", "notification"))
        if quiet and rules.in_quiet_hours(policy, now):
            await self._finish(d, "blocked", quiet)
            return False
        cap = rules.cap_of(policy, d.phase)
        if cap is not None and not await self.meter.counters.cap(
            f"{d.enterprise}|{d.recipient}|{d.phase}", cap[0], cap[1], d.id, now
        ):
            await self._finish(d, "blocked", f"frequency cap: {cap[0]} per {cap[1]:g}s")
            return False
        return True

    def _timeout(self, ent: dict[str, Any], channel: str) -> float:
        t = ((ent.get("policy") or {}).get("timeouts") or {}).get(channel)
        return float(t) if t else self.timeouts.get(channel, 30.0)

    async def _skip_reason(self, d: Delivery, ent: dict[str, Any], channel: str) -> str:
        if channel not in self.channels:
            return f"channel {channel} not configured"
        if channel in self.skips:
            return await self.skips[channel](d, ent)
        if channel == "rcs":
            chatbot = ent.get("chatbot", "")
            if not chatbot:
                return "the enterprise has no chatbot for 5G messages"
            if self.refused is not None:
                version = int(d.data.get("version", 1))
                refused = await self.refused(d.enterprise, d.card, version, chatbot)
                if refused:
                    return refused
            if self.capability is not None and not await self.capability(d.recipient, chatbot):
                return "the phone cannot show 5G messages"
        return ""

    async def _attempt(self, d: Delivery, ent: dict[str, Any], channel: str) -> Attempt | None:
        """Try one channel: the attempt as written here (its state as this process left it), or
        None when the delivery finished instead (a render error, no quota)."""
        now = time.time()
        reason = await self._skip_reason(d, ent, channel)
        if reason:
            att = await self.store.add_attempt(d.id, d.step, channel, 0, 0, now, d.day)
            await self.receipts.settle(att.id, channel, "skipped", day=att.day, done=now, detail=reason)
            att.state = "skipped"
            return att
        try:
            msg = await self.composer.message(d, ent)
            if channel in LEGACY or channel == "rcs":  # rcs: the MaaP's SMS fallback, links too
                legacy = self.composer.text(msg, channel if channel in LEGACY else "sms", ent)
            else:  # a channel that sends no text of ours (cardsms): no short links minted for it
                legacy = self.composer.degrade(msg, "sms")
        except RenderError as exc:
            await self._finish(d, "failed", f"render: {exc}")
            return None
        segments = len(legacy.segments) if channel in LEGACY else 1
        # The attempt row, its units and its ledger row commit together, before the submit, so
        # one durable wait covers them (see metering: where the units are taken differs).
        reserved = await self.meter.reserve(f"{d.id}#{d.step}", d.enterprise, d.line, channel, segments, now)
        async with self.store.tx():
            att = await self.store.add_attempt(
                d.id, d.step, channel, segments, 0, now + self._timeout(ent, channel), d.day
            )
            charge = await self.meter.settle(reserved)
            await self._charged(att, channel, charge, now)
            # its short links commit with the attempt, before the send (a card SMS's text has none)
            if charge.ok and legacy.links:
                legacy = await self._minted(d, ent, channel, legacy)
        if not charge.ok:
            await self.store.durable()
            await self._finish(d, "blocked", f"quota: {charge.reason}")
            return None
        # The attempt row and its charge are durable before anything is sent, and the lease is
        # checked (fenced: another worker took this chain over because we stalled past the
        # lease; it resumes from the attempt row, which it will not resend).
        await self._settled(d.id)
        extra: dict[str, Any] = {"step": d.step, "deadline": att.deadline}  # SMPP submits nothing after it
        # on SMS channels: an approved sender, a verified line, or the platform's (brand.py)
        extra["sender"] = source_of(ent, d.line, bool(d.data.get("verified")), self.platform_sender)
        handed = await self.channels[channel].send(
            Outgoing(d.id, channel, d.line, d.recipient, msg, legacy, ent.get("chatbot", ""), extra)
        )
        self.handed += 1
        ids = list(handed.message_ids)
        async with self.store.tx():
            await self.store.add_message_ids(att.id, ids, att.day)
            if handed.ok and self.events is not None:  # the fact commits with the attempt's state
                await self.events.record("sent", d, d.step, channel, time.time())
            if handed.ok and channel == "rcs":  # the MaaP owns the rest, SMS fallback included
                carrier = self.carrier(ent.get("chatbot", "")) if self.carrier is not None else ""
                await self.receipts.settle(
                    att.id, channel, "delivered", day=att.day, done=time.time(), detail=handed.detail,
                    fact=(d.id, d.step, carrier),
                )  # fmt: skip
                att.state = "delivered"
            elif handed.ok:
                await self.store.update_attempt(att.id, day=att.day, state="submitted", detail=",".join(ids))
                att.state = "submitted"
            elif handed.unanswered:  # it may have gone out: wait for its receipt, as after a crash
                detail = f"no answer ({handed.detail}); waiting for its receipt, not resent"
                await self.store.update_attempt(att.id, day=att.day, state="unknown", detail=detail[:300])
                att.state = "unknown"
            else:  # skipped: the channel cannot take this card now (its media not approved)
                outcome = "skipped" if handed.skipped else "error"
                await self.receipts.settle(
                    att.id, channel, outcome, day=att.day, done=time.time(), detail=handed.detail
                )
                att.state = outcome
        if not handed.ok and not handed.unanswered:  # unanswered: refunded if its deadline passes
            await self.meter.refund(charge_key(att), att.started)
        elif (
            channel == "rcs"
            and d.phase == "ringing"
            and self.revoker is not None
            and await self._late_phase(d.call_id)  # answered or ended while it was in flight
        ):
            await self.revoker.revoke(d)
        if att.state == "submitted" and self.receipts.submitted(att.id, ids, att.day):
            att.state = await self.receipts.evaluate(att.id, day=att.day)  # a receipt came before its ids
        return att

    async def _fence(self, did: str) -> None:
        """Raise LeaseLost unless this worker still holds `did`. Another worker takes a chain over
        only once the lease the store holds for it has run out by the database's clock (a lease
        is a length the database adds to its own now), and the end this worker keeps (its now
        when it asked, plus the length) is never later than that, whatever the clocks say. So
        while a third of it is still to run (room for the hand-over that follows) nobody can
        have taken it: no statement needed. Closer to the end the store is asked, which renews it."""
        now = time.time()
        if now + self.lease / 3 < self._held.get(did, 0.0):
            return
        until = now + self.lease
        if not await self.store.renew(self.owner, [did], until):
            raise LeaseLost(did)
        self._held[did] = until

    async def _minted(self, d: Delivery, ent: dict[str, Any], channel: str, legacy: LegacyText) -> LegacyText:
        """The text with a new short link per link of it (this recipient's), inside the attempt's
        transaction; the layout and segments were decided once for the card (compose.py)."""
        assert self.links is not None
        ttl = policy_of(ent).ttl
        codes = []
        for slot in legacy.links:
            kind, target = ("card", "") if slot.key == "page" else ("url", slot.target)
            link = await self.links.mint(d.enterprise, d.recipient, d.id, d.step, channel, kind, target, ttl)
            codes.append(link.code)
        return legacy.fill(codes)

    async def _charged(self, att: Attempt, channel: str, charge: Charge, now: float) -> None:
        if charge.ok:
            await self.store.update_attempt(att.id, day=att.day, units=charge.units + charge.overage)
        else:
            reason = charge.reason
            await self.receipts.settle(att.id, channel, "refused", day=att.day, done=now, detail=reason)
