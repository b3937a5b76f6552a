"""Call intake: a call event becomes a durable delivery row, then its chain starts.

The event and its delivery commit together (or neither), and the event is acknowledged only
once that commit would survive a crash. A repeat of the same call id and phase is answered as
a duplicate; with shared counters (several server processes) the event is first claimed there,
so two processes receiving the same event never both accept it.

Whose call id: the operator posts the carrier's events, whose call ids are unique across the
platform, and they are kept as given. An enterprise posting its own events numbers calls its own
way (a PBX counting from 1), so its call ids are kept in its own space (`sf/1001`): another
enterprise's call 1001 is neither its duplicate nor a later phase of it.
"""

from __future__ import annotations

import time
from typing import Any

from .chain import Chains
from .compose import choose_card
from .errors import InProgress, UnknownLine
from .experiments import for_delivery
from .metering import Counters
from .metering.ledger import day_of
from .model import DEFAULT_CHAIN, normalize_number
from .records import Delivery
from .storage import IntakeStore

# How far from now an event's own time may be and still give its rows their day: a retry of the
# event (any time within the claim's two days) then names the same day, and so the same keys. A
# time further off (a clock far wrong) gives today's day instead.
DAY_PAST, DAY_AHEAD = 2 * 86400, 600
# An event whose rows take the day it arrived (no usable `time`) and arrives this soon after
# midnight (China time) is looked for in yesterday's calls too: a carrier's retry of an event
# first accepted before midnight. A retry later than this is not recognised (docs/scaling.md).
LATE_RETRY = 3600


def timed(at: float, now: float) -> bool:
    """Whether an event's own time gives its rows their day (it is not far from now)."""
    return now - DAY_PAST <= at <= now + DAY_AHEAD


def day_of_event(at: float, now: float) -> str:
    """The day (partition, docs/scaling.md) of a call event's call and delivery rows: that of the
    event's own time, the same for every retry of it, unless that time is far from now."""
    return day_of(at if timed(at, now) else now)


def call_key(call_id: str, enterprise: str | None) -> str:
    """The call as the store keys it: an enterprise's own call ids in its own space."""
    return f"{enterprise}/{call_id}" if enterprise is not None else call_id


class Intake:
    def __init__(
        self, store: IntakeStore, counters: Counters, chains: Chains, *, dedupe_ttl: float = 2 * 86400
    ) -> None:
        self.store = store
        self.counters = counters
        self.chains = chains
        self.dedupe_ttl = dedupe_ttl

    async def resolve(self, caller: str, callee: str) -> tuple[str, dict[str, Any], str, str] | None:
        """(enterprise, line doc, line number, the person) — the enterprise's line may be the
        caller (it calls a customer) or the callee (a customer calls its hotline)."""
        for line, person in ((caller, callee), (callee, caller)):
            hit = await self.store.find("line", line)
            if hit is not None:
                return hit[0], hit[1], line, person
        return None

    async def accept(self, event: dict[str, Any], enterprise_scope: str | None) -> tuple[int, dict[str, Any]]:
        """Record a call event and start its delivery; (status, body) for the 202/200 answer.
        Raises NumberError, UnknownLine or InProgress."""
        caller = normalize_number(event["caller"])
        callee = normalize_number(event["callee"])
        call_id, phase = event["call_id"], event["phase"]
        now = time.time()
        at = float(event.get("time") or now)
        hit = await self.resolve(caller, callee)
        if hit is None or (enterprise_scope is not None and hit[0] != enterprise_scope):
            raise UnknownLine(
                "neither caller nor callee is a line of "
                + ("this enterprise" if enterprise_scope else "any enterprise")
            )
        enterprise, line, line_no, person = hit
        key = call_key(call_id, enterprise_scope)
        did = f"{key}:{phase}"
        duplicate = {"call_id": call_id, "phase": phase, "duplicate": True, "delivery": did}
        # Several processes each with a store of its own claim the event in the shared counters
        # first; a store that every process writes (PostgreSQL) is the claim itself: the calls
        # row's key admits one, and a repeat racing it waits for its commit, then is a duplicate.
        if not self.store.shared:
            claim = await self.counters.claim(did, self.dedupe_ttl)
            if claim == "pending":
                raise InProgress(f"call {call_id} {phase} is being accepted by another server; retry")
            if claim == "done":
                return 200, duplicate
        elif (
            ("time" not in event or not timed(at, now))
            and (now + 8 * 3600) % 86400 < LATE_RETRY
            and await self.store.call_seen(key, phase, day_of(now - 86400))
        ):  # its rows take today's day: a retry of yesterday's acceptance would not meet its key
            return 200, duplicate
        ent = await self.store.get("enterprise", "", enterprise) or {}
        suspended = bool(ent.get("suspended"))  # the operator stopped it: nothing is sent
        card = {} if suspended else await choose_card(self.store, enterprise, line, phase, key) or {}
        card, variant = await for_delivery(self.store, enterprise, card, person)  # a running experiment's
        d = Delivery(
            did,
            key,
            phase,
            enterprise,
            line_no,
            person,
            card.get("id", ""),
            card.get("template", ""),
            card.get("kind", "identity"),
            {
                "card_data": card.get("data") or {},
                "call_fields": card.get("call_fields") or {},
                "staff": line.get("staff"),
                "caller": caller,
                "callee": callee,
                "time": at,
                "verified": bool(line.get("verified")),
                "version": card.get("version", 1),  # the approved version sent (reviews.py)
                "class": card.get("class", "notification"),
                **variant,  # "experiment", "variant" (experiments.py)
            },
            list((ent.get("policy") or {}).get("chain") or DEFAULT_CHAIN),
            0,
            "active" if card else "skipped",
            "" if card else "enterprise suspended" if suspended else f"no card for phase {phase}",
            "",
            at,
            now,
            now,
            day_of_event(at, now),
        )
        # The event and its delivery commit together, or neither; acknowledged once durable.
        until = now + self.chains.lease
        if not await self.store.accept_call(d, self.chains.owner, until):
            return 200, duplicate
        if phase != "ringing":  # the call was answered or ended: a pending pre-call card is too late
            self.chains.note_phase(key, phase, now)
        if not self.store.shared:
            self.counters.confirm(did, self.dedupe_ttl)
        if d.state == "active":
            self.chains.spawn(did, d, until)
        return 202, {
            "call_id": call_id,
            "phase": phase,
            "duplicate": False,
            "delivery": did,
            "state": d.state,
            **({"reason": d.reason} if d.reason else {}),
        }
