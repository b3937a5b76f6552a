"""Receipts: the one door through which every delivery receipt enters, whether it came from
the SMSC over SMPP, from Kannel's dlr-url, or from another server process (forwarded through
the shared counters because the SMSC sent it to that process's session).

A receipt is stored first (it may arrive before its message id is: the chain applies it then),
then applied to its attempt: every segment `DELIVRD` → delivered; any failure → failed and its
units refunded. The waiting chain is woken to go on.

On a fleet the SMSC sends a receipt to any session of the account, so it often reaches a worker
other than the one that submitted the message and whose chain waits for it. That worker stores
it and, once it is durable, forwards it to the others; the one that submitted the message knows
its id and applies it to its waiting chain from memory, so a receipt costs no read of the store
wherever it arrives. A forwarded receipt nobody knew (its chain was taken over from a worker
that died, or its worker forgot it) is looked for in the store by the worker that heard it, a
second later, for all such receipts in one statement.

While the database is away a receipt is still applied here from memory when its chain waits
here; its writes are held by the group commit and committed once the database is back, and the
deliver_sm is answered with an error meanwhile, so the SMSC sends it again (a repeat changes
nothing). Nothing in this module lets a deadline pass for it: the chain's clock stands still
during the outage (chain.py).

A delivered (or, card SMS, displayed) attempt's "delivered" event (events.py) is written in the
same commit as its state, by `settle`: a receipt acknowledged is stored, and the chain that
settles it (here, on the worker whose chain waits, or on the one that resumes it after a kill)
writes the fact with the state, so it is neither lost nor counted twice. Its vendor is who
reported the receipt (`accept`'s `vendor`: the SMSC, Kannel, a card-SMS phone maker), where the
receipt is applied as it arrives; "" when it was read back from the store.

Every final state of an attempt, whether set here or by the chain (timeout, error, skipped,
refused, an RCS hand-over), is written through `settle`, which tells `on_outcome` (channel,
state): how the server counts outcomes without the domain knowing of it. No-op by default. A
receipt applied by two tasks at once (the receipt's own and the woken chain's, on PostgreSQL)
writes the same final state twice; `on_outcome` hears it once per process. Two processes
racing on one receipt may each tell it (rare: a receipt is applied where it arrives).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from infra.outage import log_failure, unavailable

from .events import Events
from .metering import Meter
from .records import Attempt
from .storage import ReceiptStore
from .wakeups import Wakeups

log = logging.getLogger("mingpian.delivery")
WAITING = ("submitted", "unknown")
RENDERED = "RENDERED"  # a card SMS's render receipt (cardsms.py): drawn on the phone
TOLD_KEEP = 4096  # attempts whose outcome was told lately, remembered so as not to tell it twice
SUBMITTED_KEEP = 65536  # message ids this process submitted lately, with their attempts
STRAY_WAIT = 1.0  # s a forwarded receipt is given to be applied where its chain waits
Outcome = Callable[[str, str], None]  # (channel, final state) of an attempt, once, when it is written


def no_outcome(channel: str, state: str) -> None:
    """The default `on_outcome`: nobody is counting."""


def _keep_newest(remembered: dict[Any, Any], keep: int) -> None:
    """Forget the oldest entries (insertion order) beyond `keep`: memory stays bounded."""
    while len(remembered) > keep:
        del remembered[next(iter(remembered))]


def charge_key(att: Attempt) -> str:
    """What a charge is keyed by: the delivery (call id + phase, unique across server processes)
    and the step — not the attempt's row id, which is only unique within one SQLite file."""
    return f"{att.delivery}#{att.step}"


class Receipts:
    def __init__(
        self, store: ReceiptStore, meter: Meter, wakeups: Wakeups, on_outcome: Outcome = no_outcome
    ) -> None:
        self.store = store
        self.meter = meter
        self.wakeups = wakeups
        self.on_outcome = on_outcome
        self._told: dict[int, None] = {}  # attempt ids, oldest first
        # message id → (attempt, its day), this process's submits, oldest first
        self._submitted: dict[str, tuple[int, str]] = {}
        self._unmatched: dict[str, None] = {}  # receipts heard here before their message id was known
        self._watched: dict[int, Attempt] = {}  # attempts whose chain waits here for their receipt
        self._strays: dict[str, float] = {}  # forwarded here, not ours: message id → when (monotonic)
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.events: Events | None = None  # the event stream: "delivered", with the attempt's state

    def submitted(self, attempt: int, message_ids: list[str], day: str = "") -> bool:
        """This process handed these messages over: their receipts (which the SMSC mostly sends
        back on the same session) find their attempt without a read. True if a receipt for one
        of them was heard here already (before its id was known): the attempt needs evaluating."""
        early = False
        for m in message_ids:
            self._submitted[m] = (attempt, day)  # the day: its reads name its partition
            if m in self._unmatched:
                del self._unmatched[m]
                early = True
        _keep_newest(self._submitted, SUBMITTED_KEEP)
        return early

    def watch(self, att: Attempt) -> None:
        """The chain of `att` waits in this process for its receipt: a receipt for its one message
        is applied to it (and to the chain's copy) without reading the store."""
        self._watched[att.id] = att

    def unwatch(self, att: Attempt) -> None:
        self._watched.pop(att.id, None)

    async def accept(
        self, message_id: str, stat: str, *, source: str = "", vendor: str = "", forwarded: bool = False
    ) -> None:
        """Store a receipt and apply it. The receipt is stored before anything else (if its
        message id is not stored yet, the chain applies it once it is); a forwarded one was
        stored by the worker that heard it. One for a message this process did not submit is
        forwarded to the other processes on a fleet, or looked up in the store of a process of
        its own (and forwarded when not found: processes of their own may share the counters).
        `vendor`: who reported it (the "delivered" event's vendor)."""
        if not forwarded:
            await self.store.receipt(message_id, stat, source)
        ours = self._submitted.get(message_id)
        if ours is not None:
            att = self._watched.get(ours[0])
            if att is not None and att.segments <= 1 and att.state in WAITING:
                await self._apply(att, [stat], vendor)  # its only message: nothing else to read
            else:
                await self.evaluate(ours[0], vendor, day=ours[1])
            return
        self._unmatched[message_id] = None  # our own, should its id be recorded here later
        _keep_newest(self._unmatched, SUBMITTED_KEEP)
        if forwarded:
            return  # not ours: the worker that heard it makes sure someone applies it
        if self.store.shared:  # the store every worker writes: its submitter applies it
            self._later(self._forward(message_id, stat))
            return
        found = await self.store.attempt_of_message(message_id)  # submitted before a restart
        if found is not None:
            del self._unmatched[message_id]
            await self.evaluate(found[0], day=found[1])
        else:  # a process with a store of its own: another process on the same counters sent it
            self._later(self.meter.counters.forward_receipt(message_id, stat))

    async def _forward(self, message_id: str, stat: str) -> None:
        """Tell the other workers once the receipt is durable (the one whose chain waits applies
        it from memory, or reads it), and look for it in the store later should none know it."""
        while True:
            try:
                await self.store.durable()
                break
            except Exception as exc:
                if unavailable(exc) is None:  # not stored: the SMSC hears an error and sends it again
                    log.exception("delivery receipts: storing receipt %s failed", message_id)
                    return
            # The database is away and holds the receipt until it is back: forward it then.
            await asyncio.sleep(STRAY_WAIT)
        self._strays[message_id] = time.monotonic()  # looked up later even if the fan-out fails
        _keep_newest(self._strays, SUBMITTED_KEEP)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="delivery-stray-receipts", context=contextvars.Context()
            )
        try:
            await self.meter.counters.forward_receipt(message_id, stat)
        except Exception as exc:  # Redis is away: the sweep applies it, a second later
            if unavailable(exc) is None:
                log.warning(
                    "delivery receipts: forwarding receipt %s failed; looked up here instead", message_id
                )

    async def _sweep(self) -> None:
        """Every STRAY_WAIT: the forwarded receipts of a second ago whose attempt still waits
        (one statement for all of them) are applied here."""
        while self._strays:
            await asyncio.sleep(STRAY_WAIT)
            due = time.monotonic() - STRAY_WAIT
            ripe = [m for m, at in self._strays.items() if at <= due]
            for m in ripe:
                del self._strays[m]
            try:
                for attempt in await self.store.waiting_attempts_of(ripe) if ripe else []:
                    await self.evaluate(attempt)
            except Exception as exc:  # the database is briefly away: the chains evaluate at their deadline
                log_failure(log, exc, "delivery receipts: looking up forwarded receipts failed")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def evaluate(self, attempt_id: int, vendor: str = "", *, day: str = "") -> str:
        """Apply the receipts an attempt has; its state afterwards (`vendor`: who reported the
        receipt that made it whole, when one just arrived; `day`: the attempt's, where known)."""
        att, total, stats = await self.store.attempt_receipts(attempt_id, day)
        if att is None or att.state not in WAITING:
            return att.state if att is not None else "gone"
        if total == 0 or (len(stats) < total and all(s == "DELIVRD" for s in stats)):
            return att.state
        return await self._apply(att, stats, vendor)

    async def _apply(self, att: Attempt, stats: list[str], vendor: str = "") -> str:
        """Every message of `att` has its receipt, or one failed: its final state, written, told,
        and the chain woken wherever it waits."""
        if att.channel == "cardsms":
            return await self._card(att, stats, vendor)
        failed = [s for s in stats if s != "DELIVRD"]
        now = time.time()
        if failed:
            att.state = "failed"
            detail = f"receipt {failed[0]}"
            await self.settle(att.id, att.channel, att.state, day=att.day, done=now, detail=detail)
            self._later(self.meter.refund(charge_key(att), att.started))
        else:
            att.state = "delivered"
            await self.settle(
                att.id, att.channel, att.state, day=att.day, done=now, detail="receipt DELIVRD",
                fact=(att.delivery, att.step, vendor),
            )  # fmt: skip
        self.wakeups.announce(att.delivery)
        return att.state

    async def _card(self, att: Attempt, stats: list[str], vendor: str = "") -> str:
        """A card SMS: the vendor's render receipt (RENDERED) makes it `displayed`, whatever the
        SMSC says or has not said yet; an SMSC failure fails it (refunded); the SMSC's DELIVRD
        alone waits on for the render receipt (the chain's deadline decides: `unrendered`)."""
        now = time.time()
        if RENDERED in stats:
            att.state = "displayed"
            await self.settle(
                att.id, att.channel, att.state, day=att.day, done=now, detail="render receipt",
                fact=(att.delivery, att.step, vendor),
            )  # fmt: skip
        elif failed := [s for s in stats if s != "DELIVRD"]:
            att.state = "failed"
            detail = f"receipt {failed[0]}"
            await self.settle(att.id, att.channel, att.state, day=att.day, done=now, detail=detail)
            self._later(self.meter.refund(charge_key(att), att.started))
        else:
            return att.state
        self.wakeups.announce(att.delivery)
        return att.state

    async def unrendered(self, att: Attempt) -> bool:
        """At a card SMS's deadline: the SMSC delivered it but no render receipt came, so the
        person got text and a link, not a card. The attempt is `delivered` and its units given
        back (card SMS is charged only when drawn). False when the SMSC did not say DELIVRD."""
        got, _total, stats = await self.store.attempt_receipts(att.id, att.day)
        if got is None or got.state not in WAITING or "DELIVRD" not in stats:
            return False
        await self.settle(att.id, att.channel, "delivered", day=att.day, done=time.time(),
                          detail="receipt DELIVRD; no render receipt: shown as text",
                          fact=(att.delivery, att.step, ""))  # fmt: skip
        await self.meter.refund(charge_key(att), att.started)
        return True

    async def settle(
        self,
        attempt_id: int,
        channel: str,
        state: str,
        *,
        day: str = "",
        fact: tuple[str, int, str] | None = None,
        **fields: Any,
    ) -> None:
        """Write an attempt's final state (delivered, failed, timeout, error, skipped, refused)
        and tell `on_outcome`; a delivered or displayed one with its "delivered" event in the
        same commit (`fact`: its delivery, step and the vendor that reported it). Inside a
        transaction that later rolls back (a database error), the outcome was told all the same.
        `day`: the attempt's, so its update touches one partition on PostgreSQL."""
        await self.store.update_attempt(attempt_id, day=day, state=state, **fields)
        if fact is not None and self.events is not None and state in ("delivered", "displayed"):
            # nothing between the two writes yields to the event loop: they join the same commit
            # (SQLite's open transaction, or the same group-commit batch or block on PostgreSQL)
            delivery, step, vendor = fact
            at = float(fields.get("done") or time.time())
            await self.events.record("delivered", delivery, step, channel, at, vendor=vendor, day=day)
        if attempt_id in self._told:
            return
        self._told[attempt_id] = None
        _keep_newest(self._told, TOLD_KEEP)
        self.on_outcome(channel, state)

    def _later(self, work: Any) -> None:
        """Run `work` on its own, outside any store transaction this task is in (a fresh context:
        it must not inherit the transaction's connection)."""
        t = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._background.add(t)
        t.add_done_callback(self._background.discard)
